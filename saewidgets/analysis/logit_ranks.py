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
    group_first: dict[int, np.ndarray]  # row -> position -> first position of its tie group
    group_last: dict[int, np.ndarray]  # row -> position -> last position of its tie group
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
    first_of, last_of, tie_term = {}, {}, np.zeros(rows)
    positions = np.arange(vocab, dtype=rank_dtype)
    for row in range(rows):  # 1-D take/scatter are several times faster than take_along_axis
        first = np.argsort(lows[row], kind="stable")
        order = first.take(np.argsort(highs[row].take(first), kind="stable"))
        ranks[row][order] = positions
        sorted_keys = keys[row].take(order)
        equal = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])  # p: position p ties with p + 1
        if equal.size:
            first_of[row], last_of[row], tie_term[row] = _tie_groups(equal, positions)
    return Ranks(ranks, first_of, last_of, tie_term)


def _tie_groups(equal: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Maps position -> first / last position of its tie group, from the positions that
    tie with their successor; and the groups' sum of t^3 - t."""
    breaks = np.flatnonzero(np.diff(equal) != 1)
    starts = equal[np.concatenate([[0], breaks + 1])]
    lasts = equal[np.concatenate([breaks, [equal.size - 1]])] + 1
    lengths = lasts - starts + 1
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    tied = np.repeat(starts, lengths) + offsets
    first_of, last_of = positions.copy(), positions.copy()
    first_of[tied] = np.repeat(starts, lengths)
    last_of[tied] = np.repeat(lasts, lengths)
    t = lengths.astype(np.float64)
    return first_of, last_of, float(np.sum(t**3 - t))


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
    ``sides``: ``smaller_sides(members, V)``, to compute once for many calls."""
    weights = np.asarray(weights, dtype=np.float32)
    rows, vocab = weights.shape
    es = np.zeros((rows, len(members)))
    u = np.zeros((rows, len(members)))
    if rows == 0:
        return RankScores(es, u, np.zeros(0))
    ranked = descending_ranks(weights)
    kind = "stable" if ranked.ranks.dtype == np.uint16 else "quicksort"  # stable = radix sort for 16-bit
    tied_rows = sorted(ranked.group_first)
    for s, (ids, flipped) in enumerate(sides or smaller_sides(members, vocab)):
        m = ids.size
        n = vocab - m
        if m == 0 or n == 0:
            continue
        positions = np.sort(np.take(ranked.ranks, ids, axis=1), axis=1, kind=kind)
        late = early = positions  # positions for the "after" and the "before" values
        if tied_rows:
            late, early = positions.copy(), positions.copy()
            for row in tied_rows:
                late[row] = ranked.group_last[row].take(positions[row])
                early[row] = ranked.group_first[row].take(positions[row])
        wide = np.int64 if vocab * (m + 1) >= 2**31 else np.int32
        steps = np.arange(1, m + 1, dtype=wide) * wide(vocab) - wide(m)
        # after member j: S_j = j V - (r_j + 1) m = m n x running sum; before it: S_j - n
        after = late.astype(wide)
        after *= wide(-m)
        after += steps
        before = after if early is late else early.astype(wide) * wide(-m) + steps
        high = after.max(axis=1).astype(np.int64)
        low = before.min(axis=1).astype(np.int64) - n
        up = high + low > 0
        even = np.flatnonzero(high + low == 0)
        if even.size:  # equal magnitudes: the extreme the walk reaches first (step r_j + 1 vs r_j)
            r_top = np.take_along_axis(late[even], after[even].argmax(axis=1)[:, None], axis=1)[:, 0]
            r_bottom = np.take_along_axis(early[even], before[even].argmin(axis=1)[:, None], axis=1)[:, 0]
            up[even] = r_top.astype(np.int64) + 1 <= r_bottom
        value = np.where(up, high, low) / (m * n)
        # U = m n - sum of mid-ranks + m (m - 1) / 2; a mid-rank is (first + last position of the group) / 2
        mid_sum = positions.sum(axis=1, dtype=np.int64).astype(np.float64)
        for row in tied_rows:
            mid_sum[row] = (late[row].sum(dtype=np.int64) + early[row].sum(dtype=np.int64)) / 2
        u_side = m * n - mid_sum + m * (m - 1) / 2
        es[:, s] = -value if flipped else value
        u[:, s] = m * n - u_side if flipped else u_side
    return RankScores(es, u, ranked.tie_term)


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
