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
bits, O(V) per feature. Exact ties (float32 weights of a large vocabulary
usually hold a few; a dead feature is all ties) are handled as one step: the
running sum is evaluated only between groups of equal weights (the "after"
value of a member uses the last position of its group, the "before" value the
first), and U uses mid-ranks. No tie order is assumed, so the score does not
depend on how a sort happens to order equal weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class RankScores:
    """Per feature (rows) and set (columns)."""

    es: np.ndarray  # signed enrichment score: the running sum with the largest magnitude
    u: np.ndarray  # Mann-Whitney U of members vs non-members (members ranked higher -> larger)
    tie_term: np.ndarray  # per feature: sum over tie groups of (t^3 - t), for the U variance


@dataclass
class Ranks:
    """Descending positions of every token, and the tie groups, for rows of weights."""

    ranks: np.ndarray  # rows x V: 0-based position in descending order (ties: by token id)
    group_first: np.ndarray  # rows x K: first position of each tie group (padding: V)
    group_last: np.ndarray  # rows x K: last position of each tie group (padding: V)
    tie_term: np.ndarray  # per row: sum over groups of (t^3 - t)


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


def descending_ranks(weights: np.ndarray) -> Ranks:
    """Positions in descending order and tie groups of each row of ``weights`` (rows x V)."""
    keys = descending_keys(weights)
    lows = (keys & np.uint32(0xFFFF)).astype(np.uint16)
    highs = (keys >> np.uint32(16)).astype(np.uint16)
    rows, vocab = weights.shape
    rank_dtype = np.uint16 if vocab <= 2**16 else np.uint32
    ranks = np.empty((rows, vocab), dtype=rank_dtype)
    groups, tie_term = [], np.zeros(rows)
    positions = np.arange(vocab, dtype=rank_dtype)
    for row in range(rows):  # 1-D take/scatter are several times faster than take_along_axis
        first = np.argsort(lows[row], kind="stable")
        order = first.take(np.argsort(highs[row].take(first), kind="stable"))
        ranks[row][order] = positions
        sorted_keys = keys[row].take(order)
        equal = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])  # p: position p ties with p + 1
        if equal.size:
            breaks = np.flatnonzero(np.diff(equal) != 1)
            starts = equal[np.concatenate([[0], breaks + 1])]
            lasts = equal[np.concatenate([breaks, [equal.size - 1]])] + 1
            t = (lasts - starts + 1).astype(np.float64)
            tie_term[row] = np.sum(t**3 - t)
            groups.append((row, starts, lasts))
    width = max((g[1].size for g in groups), default=0)
    group_first = np.full((rows, width), vocab, dtype=np.int64)
    group_last = np.full((rows, width), vocab, dtype=np.int64)
    for row, starts, lasts in groups:
        group_first[row, : starts.size] = starts
        group_last[row, : lasts.size] = lasts
    return Ranks(ranks, group_first, group_last, tie_term)


def smaller_sides(members: list[np.ndarray], vocab: int) -> list[tuple[np.ndarray, bool]]:
    """Each set, or its complement when that is smaller, and whether it was flipped.
    The complement's running sum is the set's negated, and its U is ``m n - U``."""
    sides = []
    for ids in members:
        if ids.size > vocab // 2:
            keep = np.ones(vocab, dtype=bool)
            keep[ids] = False
            sides.append((np.flatnonzero(keep), True))
        else:
            sides.append((np.asarray(ids), False))
    return sides


def rank_scores(
    weights: np.ndarray,
    members: list[np.ndarray],
    *,
    sides: list[tuple[np.ndarray, bool]] | None = None,
) -> RankScores:
    """Enrichment scores and Mann-Whitney U of each set (token id arrays) in each row.
    ``sides``: ``smaller_sides(members, V)``, to compute once for many calls. When the
    highest and the lowest running sums have exactly the same magnitude, es is positive."""
    weights = np.asarray(weights, dtype=np.float32)
    rows, vocab = weights.shape
    es = np.zeros((rows, len(members)))
    u = np.zeros((rows, len(members)))
    if rows == 0:
        return RankScores(es, u, np.zeros(0))
    ranked = descending_ranks(weights)
    kind = "stable" if ranked.ranks.dtype == np.uint16 else "quicksort"  # stable = radix sort for 16-bit
    has_groups = ranked.group_first.shape[1] > 0
    group_size = ranked.group_last - ranked.group_first + 1
    for s, (ids, flipped) in enumerate(sides or smaller_sides(members, vocab)):
        m = ids.size
        n = vocab - m
        if m == 0 or n == 0:
            continue
        wide = np.int64 if vocab * (m + 1) >= 2**31 else np.int32
        score = np.sort(np.take(ranked.ranks, ids, axis=1), axis=1, kind=kind).astype(wide)  # member positions
        position_sum = score.sum(axis=1, dtype=np.int64).astype(np.float64)
        fix = _mixed_groups(score, ranked, group_size) if has_groups else None
        if fix is not None:  # mixed tie groups: members share the group's mid-rank
            fix_rows, fix_cols, a, b, lo, hi, lengths, naive = fix
            np.add.at(position_sum, fix_rows[np.cumsum(lengths) - 1], (hi - lo) * (a + b) / 2 - naive)
        # after member j: S_j = j V - (r_j + 1) m = m n x running sum; before it: S_j - n
        score *= wide(-m)
        score += np.arange(1, m + 1, dtype=wide) * wide(vocab) - wide(m)
        if fix is not None:  # tie-aware: after a group's members = after the whole group, before = before it
            score[fix_rows, fix_cols] = np.repeat(hi * vocab - (b + 1) * m, lengths)
        high = score.max(axis=1).astype(np.int64)
        if fix is not None:
            score[fix_rows, fix_cols] = np.repeat(lo * vocab - a * m + n, lengths)
        low = score.min(axis=1).astype(np.int64) - n
        value = np.where(high + low >= 0, high, low) / (m * n)
        # U = m n - sum of mid-ranks + m (m - 1) / 2
        u_side = m * n - position_sum + m * (m - 1) / 2
        es[:, s] = -value if flipped else value
        u[:, s] = m * n - u_side if flipped else u_side
    return RankScores(es, u, ranked.tie_term)


def _mixed_groups(positions: np.ndarray, ranked: Ranks, group_size: np.ndarray):
    """Tie groups holding both members and non-members of a set, and the members in them:
    (rows, columns) of those members, each group's first/last position a/b, members before
    it (lo) and up to its end (hi), member counts, and the sum of the members' positions."""
    lo = np.zeros(ranked.group_first.shape, dtype=np.int64)
    hi = np.zeros(ranked.group_first.shape, dtype=np.int64)
    for row in np.flatnonzero(ranked.group_first[:, 0] < ranked.ranks.shape[1]):
        lo[row] = np.searchsorted(positions[row], ranked.group_first[row], side="left")
        hi[row] = np.searchsorted(positions[row], ranked.group_last[row], side="right")
    count = hi - lo
    mixed_rows, mixed_groups = np.nonzero((count > 0) & (count < group_size))
    if mixed_rows.size == 0:
        return None
    lo, hi = lo[mixed_rows, mixed_groups].astype(np.int64), hi[mixed_rows, mixed_groups].astype(np.int64)
    a = ranked.group_first[mixed_rows, mixed_groups]
    b = ranked.group_last[mixed_rows, mixed_groups]
    lengths = hi - lo
    starts = np.repeat(lo - np.cumsum(lengths) + lengths, lengths)
    cols = np.arange(lengths.sum()) + starts
    rows = np.repeat(mixed_rows, lengths)
    naive = np.add.reduceat(positions[rows, cols].astype(np.float64), np.cumsum(lengths) - lengths)
    return rows, cols, a, b, lo, hi, lengths, naive


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


def ks_p_value(es: np.ndarray, m: np.ndarray, vocab: int) -> tuple[np.ndarray, np.ndarray]:
    """``(p, log10_p)`` of the two-sample Kolmogorov-Smirnov test for ``|es|``.

    ``|es|`` is exactly the two-sample KS statistic D of members against non-members
    (the running sum is the difference of their empirical CDFs). Smirnov's asymptotic
    p-value: ``Q(sqrt(m n / V) D)`` with ``Q(x) = 2 sum_k (-1)^(k-1) exp(-2 k^2 x^2)``
    (``scipy.stats.kstwobign.sf``); good for sets of a few dozen tokens and up.
    """
    x = np.abs(np.asarray(es, dtype=np.float64)) * np.sqrt(m * (vocab - m) / vocab)
    x = np.broadcast_to(x, np.broadcast_shapes(x.shape, np.shape(m))).copy()
    log_p = np.zeros_like(x)
    large = x >= 1.0
    k = np.arange(1, 12)[:, None]
    xl = x[large][None, :]
    # log Q = log 2 - 2 x^2 + log(1 - e^{-6x^2} + e^{-16x^2} - ...), stable for any large x
    tail = np.sum((-1.0) ** (k - 1) * np.exp(-2.0 * (k**2 - 1) * xl**2), axis=0)
    log_p[large] = math.log(2.0) - 2.0 * xl[0] ** 2 + np.log(tail)
    small = ~large & (x > 0)
    xs = x[small][None, :]
    odd = 2 * k - 1
    cdf = math.sqrt(2 * math.pi) / xs[0] * np.sum(np.exp(-(odd**2) * math.pi**2 / (8 * xs**2)), axis=0)
    log_p[small] = np.log(np.clip(1.0 - cdf, 1e-300, 1.0))
    log_p = np.minimum(log_p, 0.0)
    return np.exp(log_p), log_p / math.log(10.0)


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values of a flat array of p-values."""
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    order = np.argsort(p)
    scaled = p[order] * p.size / np.arange(1, p.size + 1)
    q = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty_like(p)
    out[order] = np.minimum(q, 1.0)
    return out
