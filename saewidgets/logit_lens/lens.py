"""Logit lens on SAE features (Bloom & Lin 2024): each feature's direct effect on the logits.

>>> W = sw.logit_weights(model, sae, [3, 7])          # 2 x vocab
>>> stats = sw.logit_stats(model, sae)                 # one row per feature, streamed

The final norm
--------------
A feature direction ``d`` added to the residual stream reaches the logits
through the final norm ``N`` and the unembedding ``W_U``. Writing
``N(x) = g * C(x) / sigma(x) + b`` (``g`` the gain, ``C`` the mean removal of a
LayerNorm or the identity for RMSNorm, ``sigma`` the input's scale, ``b`` a bias),
the part of the logits that moves with ``d`` is ``(g * C d) @ W_U / sigma(x)``.
``fold_norm=True`` (the default) uses ``w = (g * C d) @ W_U``:

* ``g`` is the module's effective gain, measured by calling it, so that
  LayerNorm (``weight``), Llama-style RMSNorm (``weight``) and Gemma's RMSNorm
  (``1 + weight``) are all exact;
* ``C`` removes the mean over d_model when the norm is a LayerNorm;
* ``1/sigma(x)`` depends on the whole residual stream at a position, not on the
  feature: a positive factor common to every token, so ranks, skew, kurtosis and
  enrichment do not depend on it; it is left out, as is ``b @ W_U`` (the same for
  every feature) and any final logit soft-capping (monotone).

This is what the reference computed: its GPT-2 came from TransformerLens's
``HookedTransformer.from_pretrained``, whose default processing folds ``ln_final.w`` into ``W_U`` and centres its
columns over d_model (``fold_ln``), and also subtracts each row's mean over the
vocabulary (``center_unembed``: shifts every feature's weights by a constant,
changing only the ``mean``). ``fold_norm=False`` uses the raw ``d @ W_U``.

``cosine=True`` divides by the norms of ``d`` and of each column of the
effective unembedding: ``w_t = cos(d, W_eff[:, t])``. (The reference normalised
only the columns; with its unit-norm decoder rows that is the same.)
"""

from __future__ import annotations

import numbers
from concurrent.futures import Executor
from typing import Any

import numpy as np
import pandas as pd
import torch

from .core import NOT_GIVEN, Chunk, Progress, auto_chunk, feature_spec, resolve, stream, unembedding, worker_pool
from .kinds import bimodality as bimodality_of
from .kinds import feature_kinds, fixed_thresholds, kind_thresholds
from .moments import MomentWorkspace, chunk_statistics, moments_from_sums
from ..tokens.strings import tokenizer_strings


def logit_weights(
    model: Any,
    sae: Any = NOT_GIVEN,
    features: Any = None,
    *,
    cosine: bool = False,
    fold_norm: bool = True,
    device: Any = None,
) -> torch.Tensor:
    """Logit weights ``W_dec[f] @ W_U`` of one or many features: an n_features x vocab
    float32 tensor on the CPU (see the module docstring for ``fold_norm`` and ``cosine``).

    ``features``: an index, a list of indices, or direction vector(s) of length
    d_model. Give ``(model, sae, features)`` or ``(binding, features)``.
    """
    binding, (features,) = resolve(model, sae, features)
    spec = feature_spec(binding, features, default_all=False)
    lens = unembedding(binding, cosine=cosine, fold_norm=fold_norm, device=device)
    if len(spec) * lens.vocab_size > 2**31:
        raise ValueError(
            f"{len(spec)} features x {lens.vocab_size} tokens is too large to return at once; "
            "use sw.logit_stats / sw.enrichment, which stream, or ask for fewer features"
        )
    with torch.no_grad():
        return lens.weights(spec.rows(binding, 0, len(spec))).cpu()


def logit_stats(
    model: Any,
    sae: Any = NOT_GIVEN,
    features: Any = None,
    *,
    k: int = 10,
    cosine: bool = False,
    fold_norm: bool = True,
    chunk_size: int | None = None,
    device: Any = None,
    random_baseline: bool = True,
    workers: int | None = None,
    progress: Progress = True,
) -> pd.DataFrame:
    """Per-feature statistics of the logit weights over the vocabulary, one row per feature.

    Columns: ``feature``, ``mean``, ``std``, ``skew``, ``kurtosis`` (population
    moments as the reference: ``std = sqrt(mean((w-mu)^2))``, ``skew = mean(z^3)``,
    ``kurtosis = mean(z^4)`` -- PLAIN kurtosis, 3 for a Gaussian),
    ``excess_kurtosis`` (kurtosis - 3), ``bimodality`` (Sarle's
    ``(skew^2 + 1) / kurtosis``: 1/3 Gaussian, 5/9 uniform, up to 1 for two
    spikes), ``kind``, and the ``k`` most promoted / suppressed tokens
    (``top_tokens``, ``top_values``, ``top_ids``, ``bottom_*``).

    ``kind`` (checked in this order):
      prediction   skew >= S and kurtosis >= 6: a small group of tokens (a few % at
                   most) strongly promoted, far from the rest
      suppression  skew <= -S and kurtosis >= 6: the same, suppressed
      partition    bimodality >= B: the vocabulary splits into two separated groups,
                   one promoted, one suppressed (e.g. tokens with and without a
                   leading space); for two Gaussian groups at B = 5/9 that means
                   about 3.5+ standard deviations apart, for splits from 50/50 to 90/10
      none         otherwise (including features with constant weights)
    S = max(2, largest |skew|) and B = max(5/9, largest bimodality) over 512 random
    Gaussian decoder rows against the same unembedding (``random_baseline=False``:
    just the floors 2 and 5/9), so no random direction gets a kind; see
    ``saewidgets.logit_lens.kinds``. The values used are in
    ``result.attrs["kind_thresholds"]``.

    Streams over features in chunks (never d_sae x vocab at once); ``progress``: a
    tqdm bar (True), none (False) or a callable ``progress(done, total)``. Computes on
    the model's device unless ``device`` is given; on the CPU the per-row work runs on
    ``workers`` threads (default: torch's thread count, at most 4). ``sw.logit_lens_table`` gives the
    same columns plus token-class enrichment in the same pass.
    """
    binding, (features,) = resolve(model, sae, features)
    spec = feature_spec(binding, features)
    lens = unembedding(binding, cosine=cosine, fold_norm=fold_norm, device=device)
    k = check_k(k, lens.vocab_size)
    with worker_pool(workers) as pool:
        stats = StatsAccumulator(len(spec), lens.vocab_size, k, lens.device, spec.ids, pool)
        for chunk in stream(binding, spec, lens, auto_chunk(lens.vocab_size, len(spec), chunk_size),
                            progress=progress, desc="logit stats"):
            stats.add(chunk)
    return stats.table(binding, spec, lens, cosine, fold_norm, random_baseline)


def check_k(k: Any, vocab: int) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k!r}")
    return min(int(k), vocab)


class StatsAccumulator:
    """Moments and top/bottom tokens of every requested feature, filled chunk by chunk."""

    def __init__(self, n: int, vocab: int, k: int, device: torch.device, ids: Any = None,
                 pool: Executor | None = None) -> None:
        self.vocab, self.k, self.ids, self.pool = vocab, k, ids, pool
        self.moments = np.zeros((n, 4))
        self.top_v, self.top_i = np.zeros((n, k), np.float32), np.zeros((n, k), np.int64)
        self.bot_v, self.bot_i = np.zeros((n, k), np.float32), np.zeros((n, k), np.int64)
        self.workspace = MomentWorkspace(vocab, device)

    def add(self, chunk: Chunk) -> None:
        rows, weights = chunk.positions, chunk.weights
        sums, ends = chunk_statistics(weights, chunk.means, self.k, self.workspace, self.pool)
        if not torch.isfinite(sums).all():
            bad = (~torch.isfinite(sums)).any(dim=1).nonzero()[:, 0] + rows.start
            names = [self.ids[i] for i in bad.tolist()] if self.ids is not None else bad.tolist()
            raise ValueError(f"features {names[:10]} have NaN or infinite logit weights; check the SAE and model weights")
        self.moments[rows] = moments_from_sums(chunk.means, sums, self.vocab).numpy()
        if ends is not None:
            top_v, top_i, bot_v, bot_i = (part.cpu().numpy() for part in ends)
            self.top_v[rows], self.top_i[rows], self.bot_v[rows], self.bot_i[rows] = top_v, top_i, bot_v, bot_i

    def table(self, binding: Any, spec: Any, lens: Any, cosine: bool, fold_norm: bool,
              random_baseline: bool) -> pd.DataFrame:
        mean, std, skew, kurtosis = self.moments.T
        strings = _strings(binding, self.vocab)
        thresholds = kind_thresholds(binding, lens, cosine, fold_norm) if random_baseline else fixed_thresholds()
        table = pd.DataFrame(
            {
                "feature": np.asarray(spec.ids, dtype=np.int64),
                "mean": mean,
                "std": std,
                "skew": skew,
                "kurtosis": kurtosis,
                "excess_kurtosis": kurtosis - 3,
                "bimodality": bimodality_of(skew, kurtosis),
                "kind": feature_kinds(skew, kurtosis, thresholds),
                "top_tokens": [[strings[i] for i in row] for row in self.top_i],
                "top_values": self.top_v.tolist(),
                "top_ids": self.top_i.tolist(),
                "bottom_tokens": [[strings[i] for i in row] for row in self.bot_i],
                "bottom_values": self.bot_v.tolist(),
                "bottom_ids": self.bot_i.tolist(),
            }
        )
        table.attrs["kind_thresholds"] = thresholds
        return table


def _strings(binding: Any, vocab: int) -> tuple[str, ...]:
    return tokenizer_strings(binding.tokenizer, vocab).strings
