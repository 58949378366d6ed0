"""Feature kinds from the shape of the logit-weight distribution, judged against random directions.

The post that named the kinds (Bloom & Lin 2024) published no thresholds. Fixed
thresholds do not transfer between unembeddings: on a trained, clustered
unembedding (the model organism's, 1,024 tokens) most *random* Gaussian
directions already split the vocabulary into two groups (bimodality up to
0.89, see benchmarks/README.md), while on a Gaussian one they stay near skew 0,
kurtosis 3, bimodality 1/3. So each threshold is the larger of a fixed floor
and the largest value reached by ``NULL_ROWS`` random Gaussian decoder rows
against the same effective unembedding (same ``cosine`` / ``fold_norm``): a
feature gets a kind only if no random direction would.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import torch

from .moments import moments as row_moments

PREDICTION_SKEW = 2.0  # floor for |skew| of prediction / suppression features, with
HEAVY_KURTOSIS = 6.0  # a floor on (plain) kurtosis: a small group of tokens far out on one side
PARTITION_BIMODALITY = 5 / 9  # floor on Sarle's (skew^2 + 1) / kurtosis: a uniform distribution's value
NULL_ROWS = 512  # random directions measured per unembedding (cached)

_NULL_CACHE: "weakref.WeakKeyDictionary[torch.nn.Module, dict]" = weakref.WeakKeyDictionary()


def bimodality(skew: np.ndarray, kurtosis: np.ndarray) -> np.ndarray:
    """Sarle's bimodality coefficient ``(skew^2 + 1) / kurtosis`` (plain kurtosis)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.asarray(skew, dtype=np.float64) ** 2 + 1) / np.asarray(kurtosis, dtype=np.float64)


def feature_kinds(skew: np.ndarray, kurtosis: np.ndarray, thresholds: dict[str, float] | None = None) -> np.ndarray:
    """"prediction" / "suppression" / "partition" / "none" per feature (see ``kind_thresholds``)."""
    t = thresholds or fixed_thresholds()
    skew, kurtosis = np.asarray(skew, dtype=np.float64), np.asarray(kurtosis, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        heavy = kurtosis >= t["kurtosis"]
        kinds = np.full(skew.shape, "none", dtype=object)
        kinds[bimodality(skew, kurtosis) >= t["bimodality"]] = "partition"
        kinds[heavy & (skew <= -t["skew"])] = "suppression"
        kinds[heavy & (skew >= t["skew"])] = "prediction"
    return kinds


def fixed_thresholds() -> dict[str, float]:
    return {"skew": PREDICTION_SKEW, "kurtosis": HEAVY_KURTOSIS, "bimodality": PARTITION_BIMODALITY}


def kind_thresholds(binding: Any, lens: Any, cosine: bool, fold_norm: bool) -> dict[str, float]:
    """Thresholds for ``binding``'s unembedding: |skew| and bimodality are each the larger of
    the fixed floor and the maximum over ``NULL_ROWS`` random Gaussian decoder rows; the
    kurtosis floor stays fixed (it only acts together with skew). Cached per LM head,
    options and weight versions."""
    head = binding.layout.part(binding.model._module, "unembed")  # modules hash by identity
    norm = binding.final_norm()
    versions = tuple((p.data_ptr(), p._version) for p in (*head.parameters(), *norm.parameters()))
    key = (bool(cosine), bool(fold_norm), str(lens.device), binding.d_model, versions)
    per_weight = _NULL_CACHE.setdefault(head, {})
    if key not in per_weight:
        generator = torch.Generator().manual_seed(0)
        rows = torch.randn(NULL_ROWS, binding.d_model, generator=generator)
        moments = []
        buffer = torch.empty(128, lens.vocab_size, device=lens.device)  # one buffer: no fresh pages per block
        with torch.no_grad():
            for start in range(0, NULL_ROWS, 128):
                weights, means = lens.weights_and_means(rows[start : start + 128], out=buffer)
                moments.append(row_moments(weights, means).numpy())
        _, _, skew, kurtosis = np.concatenate(moments).T
        fixed = fixed_thresholds()
        per_weight[key] = {
            "skew": float(max(fixed["skew"], np.nanmax(np.abs(skew)))),
            "kurtosis": fixed["kurtosis"],
            "bimodality": float(max(fixed["bimodality"], np.nanmax(bimodality(skew, kurtosis)))),
        }
    return dict(per_weight[key])
