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
    group_first: np.ndarray  # rows x K: first position of each tie group, ascending (padding: V)
    group_last: np.ndarray  # rows x K: last position of each tie group (padding: V)
    tied_row: np.ndarray  # for every position inside a tie group: its row,
    tied_token: np.ndarray  # the token there,
    tied_shift: np.ndarray  # and its group's mid-rank minus the position
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
    groups, tied, tie_term = [], [], np.zeros(rows)
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
            lengths = lasts - starts + 1
            t = lengths.astype(np.float64)
            tie_term[row] = np.sum(t**3 - t)
            groups.append((row, starts, lasts))
            offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            inside = np.repeat(starts, lengths) + offsets  # every position inside a group
            mids = np.repeat((starts + lasts) / 2, lengths)
            tied.append((np.full(inside.size, row), order.take(inside), mids - inside))
    width = max((g[1].size for g in groups), default=0)
    group_first = np.full((rows, width), vocab, dtype=np.int64)
    group_last = np.full((rows, width), vocab, dtype=np.int64)
    for row, starts, lasts in groups:
        group_first[row, : starts.size] = starts
        group_last[row, : lasts.size] = lasts
    if tied:
        tied_row, tied_token, tied_shift = (np.concatenate(parts) for parts in zip(*tied))
    else:
        tied_row, tied_token, tied_shift = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return Ranks(ranks, group_first, group_last, tied_row.astype(np.int64), tied_token.astype(np.int64),
                 tied_shift.astype(np.float64), tie_term)


def smaller_sides(members: list[np.ndarray], vocab: int) -> list[tuple[np.ndarray, np.ndarray, bool]]:
    """Each set, or its complement when that is smaller, as (ids, mask, flipped). The
    complement's running sum is the set's negated, and its U is ``m n - U``."""
    sides = []
    for ids in members:
        mask = np.zeros(vocab, dtype=bool)
        mask[ids] = True
        flipped = ids.size > vocab // 2
        if flipped:
            mask = ~mask
        sides.append((np.flatnonzero(mask), mask, flipped))
    return sides


def rank_scores(
    weights: np.ndarray,
    members: list[np.ndarray],
    *,
    sides: list[tuple[np.ndarray, np.ndarray, bool]] | None = None,
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
    all_rows = np.arange(rows)
    for s, (ids, mask, flipped) in enumerate(sides or smaller_sides(members, vocab)):
        m = ids.size
        n = vocab - m
        if m == 0 or n == 0:
            continue
        wide = np.int64 if vocab * (m + 1) >= 2**31 else np.int32
        positions = np.sort(np.take(ranked.ranks, ids, axis=1), axis=1, kind=kind)
        # U = m n - sum of (mid-)ranks + m (m - 1) / 2; members inside a tie group take its mid-rank
        rank_sum = positions.sum(axis=1, dtype=np.int64).astype(np.float64)
        if ranked.tied_row.size:
            shift = np.where(mask[ranked.tied_token], ranked.tied_shift, 0.0)
            rank_sum += np.bincount(ranked.tied_row, weights=shift, minlength=rows)
        u_side = m * n - rank_sum + m * (m - 1) / 2
        # after member j the running sum is S_j / (m n), S_j = j V - (r_j + 1) m; just before it, (S_j - n) / (m n)
        score = positions.astype(wide)
        score *= wide(-m)
        score += np.arange(1, m + 1, dtype=wide) * wide(vocab) - wide(m)
        top, bottom = score.argmax(axis=1), score.argmin(axis=1)
        high = score[all_rows, top].astype(np.int64)
        low = score[all_rows, bottom].astype(np.int64) - n
        if ranked.group_first.shape[1]:  # an extreme at a tied member: evaluate that row between groups
            for row in _rows_with_tied_extremes(ranked, positions[all_rows, top], positions[all_rows, bottom]):
                high[row], low[row] = _tie_aware_extremes(positions[row], ranked, row, m, vocab)
        value = np.where(high + low >= 0, high, low) / (m * n)
        es[:, s] = -value if flipped else value
        u[:, s] = m * n - u_side if flipped else u_side
    return RankScores(es, u, ranked.tie_term)


def _rows_with_tied_extremes(ranked: Ranks, at_top: np.ndarray, at_bottom: np.ndarray) -> np.ndarray:
    """Rows whose highest or lowest running sum sits at a member inside a tie group. Elsewhere
    the tie-aware extremes equal the token-id-order ones: moving a member to its group's end
    only lowers its "after" value, and to its group's start only raises its "before" value."""
    first, last = ranked.group_first, ranked.group_last
    inside = ((first <= at_top[:, None]) & (at_top[:, None] <= last)).any(axis=1)
    inside |= ((first <= at_bottom[:, None]) & (at_bottom[:, None] <= last)).any(axis=1)
    return np.flatnonzero(inside)


def _tie_aware_extremes(positions: np.ndarray, ranked: Ranks, row: int, m: int, vocab: int) -> tuple[int, int]:
    """Highest S and lowest S - n of one row with every member of a tie group at the group's
    last position (for "after" values) and first position (for "before" values)."""
    first, last = ranked.group_first[row], ranked.group_last[row]
    at = np.searchsorted(first, positions, side="right") - 1
    inside = (at >= 0) & (positions <= last[np.clip(at, 0, None)])
    late = np.where(inside, last[np.clip(at, 0, None)], positions).astype(np.int64)
    early = np.where(inside, first[np.clip(at, 0, None)], positions).astype(np.int64)
    steps = np.arange(1, m + 1, dtype=np.int64) * vocab - m
    n = vocab - m
    return int((steps - late * m).max()), int((steps - early * m).min() - n)


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
