"""Rank statistics of token sets within each feature's logit weights, for many features at once.

For a feature's weights ``w`` (one per token) sorted in descending order and a
set ``S`` of ``m`` tokens among ``V`` (``n = V - m`` others), the GSEA-style
running sum adds ``1/m`` at a member and subtracts ``1/n`` otherwise. With the
0-based positions ``r_1 < ... < r_m`` of the members, ``q_j = r_j - (j - 1)``
non-members precede member ``j``, so the running sum is ``j/m - q_j/n`` just
after member ``j`` and ``(j - 1)/m - q_j/n`` just before it. It rises only at
members and falls only between them, so its maximum is the largest "after"
value and its minimum the smallest "before" value: no walk over the vocabulary
is needed, only the sorted member positions. The same positions give the
Mann-Whitney U of members against the rest: ``U = m n - sum_j q_j``.

Positions come from a two-pass LSD radix sort (16-bit digits) of the float
bits, O(V) per feature. float32 weights of a large vocabulary usually hold a
few exact ties; these are ordered by token id (what a stable sort gives). A
feature with many ties (more than ``TIE_FRACTION`` of its tokens, e.g. a dead
feature whose weights are all zero) is scored tie-aware instead: the running
sum is evaluated only between groups of equal weights, and U uses mid-ranks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# A row is scored tie-aware when more than this fraction of its tokens tie with a neighbour.
TIE_FRACTION = 0.001


@dataclass
class RankScores:
    """Per feature (rows) and set (columns)."""

    es: np.ndarray  # signed enrichment score: the running sum with the largest magnitude
    u: np.ndarray  # Mann-Whitney U of members vs non-members (members ranked higher -> larger)
    tie_term: np.ndarray  # per feature: sum over tie groups of (t^3 - t), for the U variance


def descending_keys(weights: np.ndarray) -> np.ndarray:
    """uint32 keys whose ascending order is the descending order of ``weights`` (float32):
    non-negative floats get their low 31 bits flipped, negative ones keep their bits."""
    signed = np.array(weights, dtype=np.float32, copy=True)
    signed += np.float32(0.0)  # -0.0 -> +0.0, so that equal weights get equal keys
    signed = signed.view(np.int32)
    flip = signed >> 31  # -1 for negative, 0 otherwise
    np.invert(flip, out=flip)
    flip &= 0x7FFFFFFF
    signed ^= flip
    return signed.view(np.uint32)


def descending_ranks(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(ranks, n_tied)``: each token's 0-based position in descending order (ties by
    token id) and, per row, how many weights equal their successor. ``weights``: rows x V."""
    keys = descending_keys(weights)
    lows = (keys & np.uint32(0xFFFF)).astype(np.uint16)
    highs = (keys >> np.uint32(16)).astype(np.uint16)
    rows, vocab = weights.shape
    rank_dtype = np.uint16 if vocab <= 2**16 else np.uint32
    ranks = np.empty((rows, vocab), dtype=rank_dtype)
    n_tied = np.zeros(rows, dtype=np.int64)
    positions = np.arange(vocab, dtype=rank_dtype)
    for row in range(rows):  # 1-D take/scatter are several times faster than take_along_axis
        first = np.argsort(lows[row], kind="stable")
        order = first.take(np.argsort(highs[row].take(first), kind="stable"))
        sorted_keys = keys[row].take(order)
        n_tied[row] = np.count_nonzero(sorted_keys[1:] == sorted_keys[:-1])
        ranks[row][order] = positions
    return ranks, n_tied


def rank_scores(weights: np.ndarray, members: list[np.ndarray], heavy_ties: float = TIE_FRACTION) -> RankScores:
    """Enrichment scores and Mann-Whitney U of each set (sorted token id arrays) in each row.

    Rows where more than ``heavy_ties`` of the tokens tie with a neighbour (a dead
    feature, a block of identical unembedding columns) are scored tie-aware; in the
    others the few exact float ties are ordered by token id.
    """
    weights = np.asarray(weights, dtype=np.float32)
    rows, vocab = weights.shape
    es = np.zeros((rows, len(members)))
    u = np.zeros((rows, len(members)))
    tie_term = np.zeros(rows)
    if rows == 0:
        return RankScores(es, u, tie_term)
    ranks, n_tied = descending_ranks(weights)
    kind = "stable" if ranks.dtype == np.uint16 else "quicksort"  # stable = radix sort for 16-bit
    for s, ids in enumerate(members):
        m = ids.size
        n = vocab - m
        positions = np.sort(ranks[:, ids], axis=1, kind=kind)
        # S_j = j V - (r_j + 1) m = m n (running sum just after member j); "just before" is S_j - n.
        steps = np.arange(1, m + 1, dtype=np.int64) * vocab - m
        score = steps - positions.astype(np.int64) * m
        top, bottom = score.argmax(axis=1), score.argmin(axis=1)
        after_max = np.take_along_axis(score, top[:, None], axis=1)[:, 0] / (m * n)
        before_min = (np.take_along_axis(score, bottom[:, None], axis=1)[:, 0] - n) / (m * n)
        # Equal magnitudes: the one the walk reaches first (step r_j + 1 vs step r_j).
        first_up = np.take_along_axis(positions, top[:, None], axis=1)[:, 0].astype(np.int64) + 1 <= \
            np.take_along_axis(positions, bottom[:, None], axis=1)[:, 0]
        up = (after_max > -before_min) | ((after_max == -before_min) & first_up)
        es[:, s] = np.where(up, after_max, before_min)
        ahead = positions.sum(axis=1, dtype=np.int64) - m * (m - 1) // 2  # sum_j q_j
        u[:, s] = m * n - ahead
    for row in np.flatnonzero(n_tied > heavy_ties * vocab):
        es[row], u[row], tie_term[row] = _tied_row(weights[row], members)
    return RankScores(es, u, tie_term)


def _tied_row(w: np.ndarray, members: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, float]:
    """Tie-aware scores for one row: groups of equal weights move the running sum together."""
    values, group, counts = np.unique(-(w + np.float32(0.0)), return_inverse=True, return_counts=True)
    vocab = w.size
    es, u = np.zeros(len(members)), np.zeros(len(members))
    for s, ids in enumerate(members):
        m, n = ids.size, vocab - ids.size
        hits = np.bincount(group[ids], minlength=values.size)
        misses = counts - hits
        running = np.cumsum(hits) / m - np.cumsum(misses) / n
        running = np.concatenate([[0.0], running])
        es[s] = running[np.argmax(np.abs(running))]
        misses_below = n - (np.cumsum(misses))  # non-members in lower groups (descending order)
        u[s] = float(np.sum(hits * (misses_below + 0.5 * misses)))
    tie_term = float(np.sum(counts.astype(np.float64) ** 3 - counts))
    return es, u, tie_term


def mann_whitney_p(u: np.ndarray, m: np.ndarray, vocab: int, tie_term: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(z, p, log10_p)``: two-sided normal approximation with tie and continuity
    corrections (as ``scipy.stats.mannwhitneyu(method="asymptotic")``)."""
    import torch

    n = vocab - m
    mu = m * n / 2.0
    var = m * n / 12.0 * ((vocab + 1) - tie_term[:, None] / (vocab * (vocab - 1.0)))
    sigma = np.sqrt(np.maximum(var, 1e-300))
    z = (np.abs(u - mu) - 0.5) / sigma
    log_half_p = torch.special.log_ndtr(torch.as_tensor(-z, dtype=torch.float64)).numpy()
    log_p = np.minimum(log_half_p + math.log(2.0), 0.0)
    signed_z = np.sign(u - mu) * np.maximum(z, 0.0)
    return signed_z, np.exp(log_p), log_p / math.log(10.0)


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values of a flat array of p-values."""
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    order = np.argsort(p)
    scaled = p[order] * p.size / np.arange(1, p.size + 1)
    q = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty_like(p)
    out[order] = np.minimum(q, 1.0)
    return out
