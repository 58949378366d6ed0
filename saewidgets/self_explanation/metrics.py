"""Self-explanation metrics and defaults: layers, scales, self-similarity, entropy, CE, composite.

All metrics are read at the last prompt position of each batch row (one row per scale).
Natural logarithms throughout (nats).
"""

from __future__ import annotations

import numpy as np
import torch

INJECT_DEPTH = 1 / 9  # Kharlapenko & neverix: Gemma-2B, inject at layer 2 of 18 ...
PROBE_DEPTH = 8 / 9  # ... and read self-similarity at layer 16 of 18
DEFAULT_N_SCALES = 32
DEFAULT_MAX_RATIO = 2.0  # scales sweep ||scale * d|| from 0 to 2x the median residual norm
DEFAULT_MIN_RATIO = 0.1  # composite ignores ||scale * d|| below 0.1x that norm (their "10" of 0..200)
DEFAULT_FAILURE_THRESHOLD = 0.01
SELFSIM_WEIGHT, CE_WEIGHT = 0.4, 0.6


def default_layers(n_layers: int) -> tuple[int, int]:
    """(inject, probe) at about 1/9 and 8/9 of the depth, rounded, with inject < probe.

    The probe may be ``n_layers`` (the residual after the last block), so that even a
    one-block model gets inject 0, probe 1. 4 blocks: (0, 3); 12 blocks (GPT-2): (1, 11);
    18 blocks (Gemma-2B): (2, 16); 26 blocks (Gemma-2-2B): (3, 23).
    """
    inject = min(max(round(n_layers * INJECT_DEPTH), 0), max(n_layers - 1, 0))
    probe = min(max(round(n_layers * PROBE_DEPTH), inject + 1), n_layers)
    if probe == n_layers and n_layers - 1 > inject:
        probe = n_layers - 1
    return inject, probe


def default_scales(reference_norm: float, direction_norm: float, n: int = DEFAULT_N_SCALES,
                   max_ratio: float = DEFAULT_MAX_RATIO) -> np.ndarray:
    """``n`` scales from 0 to where ``||scale * d||`` is ``max_ratio`` x the reference norm."""
    return np.linspace(0.0, max_ratio * reference_norm / max(direction_norm, 1e-12), n)


def row_cosine(vectors: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """Cosine of each row of ``vectors`` (R x d) with ``direction`` (d or R x d), row by row."""
    vectors = vectors.double()
    direction = direction.double().expand_as(vectors)
    dots = (vectors * direction).sum(-1)
    norms = vectors.norm(dim=-1) * direction.norm(dim=-1)
    return dots / norms.clamp_min(1e-30)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of ``softmax(logits)`` per row, in nats."""
    logp = torch.log_softmax(logits.double(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def cross_entropy(logits: torch.Tensor, baseline_logits: torch.Tensor) -> torch.Tensor:
    """``H(p_a, p_base) = -sum_v p_a(v) log p_base(v)`` per row, in nats.

    ``p_a`` is each row's next-token distribution, ``p_base`` the baseline row's. It equals
    ``H(p_a) + KL(p_a || p_base)``: low when the patched prompt predicts confidently the
    kind of token a prompt about a generic word predicts (the template still works), high
    when the patch has broken the prompt.
    """
    p = torch.softmax(logits.double(), dim=-1)
    log_base = torch.log_softmax(baseline_logits.double(), dim=-1).expand_as(p)
    return -(p * log_base).sum(-1)


def minmax(values: np.ndarray) -> np.ndarray:
    """Rescale to [0, 1]; a constant array becomes zeros."""
    values = np.asarray(values, dtype=float)
    low, high = np.min(values), np.max(values)
    return np.zeros_like(values) if high - low <= 1e-12 else (values - low) / (high - low)


def composite(self_similarity: np.ndarray, cross_ent: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """``M = 0.4 * minmax(selfsim) - 0.6 * minmax(CE)`` over the eligible scales; NaN elsewhere.

    When no scale is eligible, all scales are used.
    """
    eligible = np.asarray(eligible, dtype=bool)
    if not eligible.any():
        eligible = np.ones_like(eligible)
    out = np.full(len(eligible), np.nan)
    out[eligible] = SELFSIM_WEIGHT * minmax(self_similarity[eligible]) - CE_WEIGHT * minmax(cross_ent[eligible])
    return out
