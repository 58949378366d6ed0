"""Token-set enrichment of SAE features' logit weights (GSEA-style, with significance).

>>> df = sw.enrichment(model, sae, features=None, sets=["starts_with_space", "digits"])
>>> df.sort_values("es", key=abs, ascending=False).head()
"""

from __future__ import annotations

import warnings
from concurrent.futures import Executor
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from .core import NOT_GIVEN, Chunk, Progress, auto_chunk, feature_spec, resolve, stream, unembedding, worker_pool
from .ranks import RANK_ROWS, RankScores, TokenSets, benjamini_hochberg, ks_p_value, mann_whitney_p, score_rows
from ..tokens.classes import TokenClasses, token_classes

# The reference's built-in token sets that exist for every tokenizer.
DEFAULT_SETS = (
    "starts_with_space", "capitalised", "lower", "all_caps", "digits", "punctuation",
    "open_bracket", "close_bracket", "whitespace", "length_1", "length_2", "length_3",
)


def enrichment(
    model: Any,
    sae: Any = NOT_GIVEN,
    features: Any = None,
    sets: Any = None,
    *,
    cosine: bool = False,
    fold_norm: bool = True,
    chunk_size: int | None = None,
    device: Any = None,
    workers: int | None = None,
    progress: Progress = True,
) -> pd.DataFrame:
    """Enrichment of token sets among each feature's logit weights ``w_f``.

    ``features``: None (all), an index, indices or direction vector(s). ``sets``:
    class names of ``sw.token_classes(model)`` (default: ``DEFAULT_SETS``), a
    ``TokenClasses`` (all its classes: use ``.select(names)`` for some), or a
    mapping name -> boolean mask over the vocabulary or token ids. Sets with no
    token, or with every token, are dropped with a warning.

    Returns one row per (feature, set):
      es          the reference's GSEA/KS running-sum score (SAELens tsea.py: sort the
                  vocab by w_f descending, add 1/|S| at members, subtract 1/(V-|S|)
                  otherwise), SIGNED: the running sum of largest magnitude (positive when
                  the highest and lowest are exactly as large). |es| is the reference's
                  score; es > 0 when members gather among promoted tokens.
      direction   "promoted" (es > 0) or "suppressed" (es < 0)
      ks_p        |es| is exactly the two-sample Kolmogorov-Smirnov statistic of members
                  vs the rest: Smirnov's asymptotic two-sided p-value (scipy.stats.kstwobign);
                  sensitive to part of the set sitting at one end
      auroc       P(w_f of a member > w_f of a non-member) (Mann-Whitney U / (|S| (V-|S|)))
      z, p_value  two-sided Mann-Whitney test, normal approximation with tie and
                  continuity corrections (as scipy.stats.mannwhitneyu "asymptotic");
                  sensitive to the whole set shifting
      ks_q, q_value  Benjamini-Hochberg q-values of ks_p / p_value across every row of
                  this table; log10_ks_p, log10_p stay finite where p underflows
    Exact ties between weights count as one step of the walk (and mid-ranks for U),
    so no tie order is assumed (see ``saewidgets.logit_lens.ranks``). The weights stream
    in chunks (matmul on the model's device, ranks on the CPU, ``workers`` threads,
    default: torch's thread count, at most 4); ``cosine``/``fold_norm`` as in
    ``sw.logit_weights``; ``progress``: a tqdm bar, False, or ``progress(done, total)``.
    ``sw.logit_lens_table`` gives the same ``es`` with the statistics, in one pass.
    """
    binding, (features, sets) = resolve(model, sae, features, sets)
    spec = feature_spec(binding, features)
    lens = unembedding(binding, cosine=cosine, fold_norm=fold_norm, device=device)
    names, members = token_sets(binding, sets, lens.vocab_size)
    with worker_pool(workers) as pool:
        ranks = RankAccumulator(len(spec), members, lens.vocab_size, pool)
        for chunk in stream(binding, spec, lens, auto_chunk(lens.vocab_size, len(spec), chunk_size),
                            progress=progress, desc="enrichment"):
            ranks.add(chunk)
    return enrichment_table(spec.ids, names, ranks.sets.sizes, lens.vocab_size, ranks.scores)


class RankAccumulator:
    """Rank scores of every requested feature for some token sets, filled chunk by chunk
    (blocks of ``RANK_ROWS`` rows on ``pool``'s threads)."""

    def __init__(self, n: int, members: list[np.ndarray], vocab: int, pool: Executor, *, with_u: bool = True) -> None:
        self.sets, self.with_u, self.pool = TokenSets(members, vocab), with_u, pool
        self.scores = RankScores(np.zeros((n, len(members))), np.zeros((n, len(members))), np.zeros(n))

    def add(self, chunk: Chunk) -> None:
        weights = chunk.weights.cpu().numpy()  # a view on the CPU: the blocks are ranked before the next chunk
        starts = range(0, weights.shape[0], RANK_ROWS)
        done = self.pool.map(lambda i: score_rows(weights[i : i + RANK_ROWS], self.sets, with_u=self.with_u), starts)
        for start, (es, u, tie_term) in zip(starts, done):
            rows = slice(chunk.positions.start + start, chunk.positions.start + start + es.shape[0])
            self.scores.es[rows], self.scores.u[rows], self.scores.tie_term[rows] = es, u, tie_term


def enrichment_table(
    features: Sequence[int], names: Sequence[str], sizes: np.ndarray, vocab: int, scores: RankScores
) -> pd.DataFrame:
    """The tidy result table from raw rank scores (features x sets)."""
    n_f, n_s = scores.es.shape
    z, p, log10_p = mann_whitney_p(scores.u, sizes[None, :], vocab, scores.tie_term)
    ks_p, log10_ks_p = ks_p_value(scores.es, sizes[None, :], vocab)
    auroc = scores.u / (sizes * (vocab - sizes))[None, :]
    es = scores.es.reshape(-1)
    return pd.DataFrame(
        {
            "feature": np.repeat(np.asarray(features, dtype=np.int64), n_s),
            "set": pd.Categorical(np.tile(np.asarray(names, dtype=object), n_f), categories=list(names)),
            "size": np.tile(sizes.astype(np.int64), n_f),
            "es": es,
            "direction": np.where(es > 0, "promoted", np.where(es < 0, "suppressed", "none")),
            "ks_p": ks_p.reshape(-1),
            "ks_q": benjamini_hochberg(ks_p.reshape(-1)),
            "log10_ks_p": log10_ks_p.reshape(-1),
            "auroc": auroc.reshape(-1),
            "z": z.reshape(-1),
            "p_value": p.reshape(-1),
            "q_value": benjamini_hochberg(p.reshape(-1)),
            "log10_p": log10_p.reshape(-1),
        }
    )


def token_sets(binding: Any, sets: Any, vocab: int) -> tuple[list[str], list[np.ndarray]]:
    """Names and sorted member ids of the requested sets, empty/full sets dropped."""
    if sets is None:
        sets = list(DEFAULT_SETS)
    if isinstance(sets, str):
        sets = [sets]
    if isinstance(sets, TokenClasses):
        if sets.vocab_size != vocab:
            raise ValueError(
                f"the token classes cover {sets.vocab_size} tokens but the unembedding has {vocab}; "
                "build them with sw.token_classes(binding)"
            )
        items = [(name, sets[name]) for name in sets]
    elif isinstance(sets, Mapping):
        items = list(sets.items())
    elif isinstance(sets, Sequence) and all(isinstance(s, str) for s in sets):
        classes = token_classes(binding)
        items = [(name, classes[name]) for name in sets]
    else:
        raise ValueError(
            "sets must be class names (e.g. ['starts_with_space', 'digits']), a TokenClasses, "
            f"or a mapping name -> mask or token ids; got {type(sets).__name__}"
        )
    names, members, dropped = [], [], []
    for name, value in items:
        ids = _member_ids(str(name), value, vocab)
        if 0 < ids.size < vocab:
            names.append(str(name))
            members.append(ids)
        else:
            dropped.append(f"{name} ({'empty' if ids.size == 0 else 'every token'})")
    if dropped:
        warnings.warn(f"token sets dropped (enrichment needs members and non-members): {', '.join(dropped)}", stacklevel=3)
    if not names:
        raise ValueError("no usable token set: every set was empty or covered the whole vocabulary")
    return names, members


def _member_ids(name: str, value: Any, vocab: int) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, (set, frozenset)):
        value = sorted(value)
    array = np.asarray(value)
    if array.dtype == bool:
        if array.shape != (vocab,):
            raise ValueError(f"set {name!r}: a mask must have one entry per token ({vocab}), got shape {array.shape}")
        return np.flatnonzero(array)
    array = array.reshape(-1)
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"set {name!r}: give a boolean mask or integer token ids, got dtype {array.dtype}")
    bad = array[(array < 0) | (array >= vocab)]
    if bad.size:
        raise ValueError(f"set {name!r}: token ids {bad[:10].tolist()} are outside the vocabulary (0..{vocab - 1})")
    return np.unique(array.astype(np.int64))
