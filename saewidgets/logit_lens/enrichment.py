"""Token-set enrichment of SAE features' logit weights (GSEA-style, with significance).

>>> df = sw.enrichment(model, sae, features=None, sets=["starts_with_space", "digits"])
>>> df.sort_values("es", key=abs, ascending=False).head()
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from .core import NOT_GIVEN, auto_chunk, feature_spec, iter_weights, resolve, unembedding
from .ranks import RankScores, benjamini_hochberg, ks_p_value, mann_whitney_p, rank_scores, smaller_sides
from ..tokens.classes import TokenClasses, token_classes

RANK_BLOCK = 32  # features ranked per call (per thread)

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
    progress: bool = True,
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
    so no tie order is assumed (see ``logit_ranks``). The weights stream in chunks
    (matmul on the model's device, ranks on the CPU, ``workers`` threads);
    ``cosine``/``fold_norm`` as in ``sw.logit_weights``.
    """
    binding, (features, sets) = resolve(model, sae, features, sets)
    spec = feature_spec(binding, features)
    lens = unembedding(binding, cosine=cosine, fold_norm=fold_norm, device=device)
    vocab = lens.vocab_size
    names, members = _token_sets(binding, sets, vocab)
    sizes = np.array([ids.size for ids in members], dtype=np.float64)
    sides = smaller_sides(members, vocab)
    chunk = auto_chunk(vocab, len(spec), chunk_size)
    workers = max(1, int(workers or min(4, torch.get_num_threads())))
    scores = RankScores(np.zeros((len(spec), len(names))), np.zeros((len(spec), len(names))), np.zeros(len(spec)))
    with ThreadPoolExecutor(workers) as pool:
        for rows, weights in iter_weights(binding, spec, lens, chunk, progress=progress, desc="enrichment"):
            block = weights.cpu().numpy()
            # blocks of a few rows: their arrays stay small enough for malloc to reuse (no page faults)
            starts = range(0, block.shape[0], RANK_BLOCK)
            ranked = pool.map(lambda i: rank_scores(block[i : i + RANK_BLOCK], members, sides=sides), starts)  # noqa: B023
            for start, result in zip(starts, ranked):
                target = slice(rows.start + start, rows.start + start + result.es.shape[0])
                scores.es[target], scores.u[target], scores.tie_term[target] = result.es, result.u, result.tie_term
    return enrichment_table(spec.ids, names, sizes, vocab, scores)


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


def _token_sets(binding: Any, sets: Any, vocab: int) -> tuple[list[str], list[np.ndarray]]:
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
