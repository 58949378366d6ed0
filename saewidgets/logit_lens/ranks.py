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
Mann-Whitney U of members against the rest: ``U = m n - sum_j q_j``. All of it is
integer arithmetic (numerators over ``m n``), so the scores are exact.

The descending order of a row comes from ONE sort: each weight, negated and widened to
float64 (exact), carries its token id in the 29 low mantissa bits that widening leaves
at zero, so a plain (SIMD) float64 sort orders the tokens and the ids come back from the
low bits. Member positions are then gathered per set and sorted (small integers).
Exact ties (float32 weights of a large vocabulary usually hold a few; a dead feature is
all ties) are handled as one step: the running sum is evaluated only between groups of
equal weights (the "after" value of a member uses the last position of its group, the
"before" value the first), and U uses mid-ranks. No tie order is assumed, so the score
does not depend on how the sort happens to order equal weights. Sets larger than half
the vocabulary are scored through their complement (the negated walk; ``m n - U``).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

RANK_ROWS = 16  # rows ranked together: their workspace stays a few MB and per-call overhead small
ID_BITS = 29  # low mantissa bits of a float64 that are zero for a widened float32


@dataclass
class RankScores:
    """Per feature (rows) and set (columns)."""

    es: np.ndarray  # signed enrichment score: the running sum with the largest magnitude
    u: np.ndarray  # Mann-Whitney U of members vs non-members (members ranked higher -> larger)
    tie_term: np.ndarray  # per feature: sum over tie groups of (t^3 - t), for the U variance


@dataclass
class SetSide:
    """One token set as the kernel scores it: the set or its complement, whichever is smaller."""

    ids: np.ndarray  # sorted token ids of this side
    mask: np.ndarray  # bool, vocab: membership of this side
    flipped: bool  # True when this side is the complement of the set
    steps: np.ndarray  # j V - m for j = 1..m (the "after" numerator without the position term)


class TokenSets:
    """Sets of token ids prepared once for many calls of ``rank_scores`` on one vocabulary."""

    def __init__(self, members: Sequence[np.ndarray], vocab: int) -> None:
        if not 1 <= vocab < 2**ID_BITS:
            raise ValueError(f"vocabulary of {vocab} tokens: enrichment supports 1..{2**ID_BITS - 1}")
        self.vocab = vocab
        self.sizes = np.array([np.asarray(ids).size for ids in members], dtype=np.float64)
        self.rank_dtype = np.uint16 if vocab <= 2**16 else np.uint32
        self.sides = []
        for ids in members:
            mask = np.zeros(vocab, dtype=bool)
            mask[np.asarray(ids, dtype=np.int64)] = True
            flipped = int(mask.sum()) > vocab // 2
            if flipped:
                mask = ~mask
            side = np.flatnonzero(mask)
            m = side.size
            wide = np.int64 if vocab * (m + 1) >= 2**31 else np.int32
            steps = (np.arange(1, m + 1, dtype=np.int64) * vocab - m).astype(wide)
            self.sides.append(SetSide(side, mask, flipped, steps))
        self.max_side = max((side.ids.size for side in self.sides), default=0)

    def __len__(self) -> int:
        return len(self.sides)


def rank_scores(weights: np.ndarray, sets: Sequence[np.ndarray] | TokenSets) -> RankScores:
    """Enrichment scores and Mann-Whitney U of each set (token id arrays, or a prepared
    ``TokenSets``) in each row of ``weights`` (float32, rows x vocab). When the highest and
    the lowest running sums have exactly the same magnitude, es is positive."""
    weights = np.ascontiguousarray(weights, dtype=np.float32)
    rows, vocab = weights.shape
    sets = sets if isinstance(sets, TokenSets) else TokenSets(sets, vocab)
    if sets.vocab != vocab:
        raise ValueError(f"the token sets cover {sets.vocab} tokens but the weights have {vocab}")
    es, u, tie_term = np.zeros((rows, len(sets))), np.zeros((rows, len(sets))), np.zeros(rows)
    for start in range(0, rows, RANK_ROWS):
        block = slice(start, min(rows, start + RANK_ROWS))
        es[block], u[block], tie_term[block] = score_rows(weights[block], sets)
    return RankScores(es, u, tie_term)


class _Workspace:
    """Per-thread buffers of ``score_rows`` (fresh pages for every block would cost as much
    as the sort)."""

    def __init__(self, rows: int, sets: TokenSets) -> None:
        vocab = sets.vocab
        self.key = (rows, vocab, sets.max_side, sets.rank_dtype)
        self.packed = np.empty((rows, vocab), dtype=np.float64)
        self.ids = np.empty((rows, vocab), dtype=np.int64)
        self.ranks = np.empty((rows, vocab), dtype=sets.rank_dtype)
        self.xor = np.empty((rows, max(vocab - 1, 0)), dtype=np.uint64)
        self.tied = np.empty((rows, max(vocab - 1, 0)), dtype=bool)
        self.positions = np.empty(rows * sets.max_side, dtype=sets.rank_dtype)
        self.scores = np.empty(rows * sets.max_side, dtype=np.int64)
        self.token_ids = np.arange(vocab, dtype=np.int64)
        self.arange = np.arange(vocab, dtype=sets.rank_dtype)
        # torch's scatter inverts the sorted order about 2.5x faster than a numpy fancy
        # assignment; the same buffers, viewed as signed integers (bit patterns unchanged)
        signed = np.int16 if sets.rank_dtype == np.uint16 else np.int32
        self.ranks_t = torch.from_numpy(self.ranks.view(signed))
        self.ids_t = torch.from_numpy(self.ids)
        self.arange_t = torch.from_numpy(self.arange.view(signed)).expand(rows, vocab)


_LOCAL = threading.local()


def _workspace(rows: int, sets: TokenSets) -> _Workspace:
    space = getattr(_LOCAL, "space", None)
    key = (max(rows, RANK_ROWS), sets.vocab, sets.max_side, sets.rank_dtype)
    if space is None or space.key[1:] != key[1:] or space.key[0] < rows:
        space = _LOCAL.space = _Workspace(key[0], sets)
    return space


@dataclass
class TieGroups:
    """Groups of equal weights in the descending order of a block of rows."""

    first: np.ndarray  # rows x K: first position of each group, ascending (padding: V)
    last: np.ndarray  # rows x K: last position of each group (padding: V)
    row: np.ndarray  # for every position inside a group: its row,
    token: np.ndarray  # the token there,
    shift: np.ndarray  # and its group's mid-rank minus the position
    tie_term: np.ndarray  # per row: sum over groups of (t^3 - t)
    tied: np.ndarray  # rows x (V - 1): position p ties with p + 1


def score_rows(
    weights: np.ndarray, sets: TokenSets, *, with_u: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(es, u, tie_term)`` of every set in each row of ``weights`` (float32, rows x V);
    ``with_u=False`` leaves ``u`` at 0 (es alone: no rank sums, no mid-rank corrections)."""
    rows, vocab = weights.shape
    space = _workspace(rows, sets)
    low = np.int64(2**ID_BITS - 1)
    packed = space.packed[:rows]
    bits = packed.view(np.int64)
    np.subtract(0.0, weights, out=packed)  # -w, exact in float64; -0.0 becomes +0.0: equal weights, equal keys
    np.bitwise_or(bits, space.token_ids, out=bits)  # the token id rides in the zero low mantissa bits
    packed.sort(axis=1)  # ascending -w: descending w
    if not np.isfinite(packed[:, -1]).all():  # NaN (and +-inf, which the id bits turn into NaN) sort last
        raise ValueError("the logit weights contain NaN or infinite values; check the model and SAE weights")
    ids = np.bitwise_and(bits, low, out=space.ids[:rows])
    ranks = space.ranks[:rows]
    space.ranks_t[:rows].scatter_(1, space.ids_t[:rows], space.arange_t[:rows])  # ranks[row, ids[row]] = 0..V-1
    # every tie group is needed for U (mid-ranks, tie term); es alone needs them only when an
    # extreme sits next to an equal weight, which is rare: then they are found
    ties = _tie_groups(bits, ids, space, rows, vocab) if with_u else None
    es, u = np.zeros((rows, len(sets))), np.zeros((rows, len(sets)))
    every = np.arange(rows)
    for s, side in enumerate(sets.sides):
        m = side.ids.size
        n = vocab - m
        positions = space.positions[: rows * m].reshape(rows, m)
        np.take(ranks, side.ids, axis=1, out=positions)
        positions.sort(axis=1)
        # after member j the running sum is S_j / (m n), S_j = j V - (r_j + 1) m; just before it, (S_j - n) / (m n)
        score = space.scores[: rows * m].view(side.steps.dtype)[: rows * m].reshape(rows, m)
        np.multiply(positions, side.steps.dtype.type(-m), out=score, dtype=side.steps.dtype)
        np.add(score, side.steps, out=score)
        top, bottom = score.argmax(axis=1), score.argmin(axis=1)
        high = score[every, top].astype(np.int64)
        low_ = score[every, bottom].astype(np.int64) - n
        at_top, at_bottom = positions[every, top], positions[every, bottom]
        if ties is None and (_next_to_equal(bits, at_top) | _next_to_equal(bits, at_bottom)).any():
            ties = _tie_groups(bits, ids, space, rows, vocab)
        if ties is not None and ties.first.shape[1]:  # an extreme at a tied member: evaluate between groups
            for row in _rows_with_tied_extremes(ties, at_top, at_bottom):
                high[row], low_[row] = _tie_aware_extremes(positions[row], ties, row, m, vocab)
        if with_u:  # U = m n - sum of (mid-)ranks + m (m - 1) / 2; members of a tie group take its mid-rank
            total = np.uint32 if vocab <= 2**16 else np.uint64  # m V < 2^32 for 16-bit positions
            rank_sum = positions.sum(axis=1, dtype=total).astype(np.float64)
            if ties is not None and ties.row.size:
                shift = np.where(side.mask[ties.token], ties.shift, 0.0)
                rank_sum += np.bincount(ties.row, weights=shift, minlength=rows)
            u_side = m * n - rank_sum + m * (m - 1) / 2
        else:
            u_side = np.zeros(rows)
        if side.flipped:  # the set's walk is the complement's negated: its "highest" is -low_
            es[:, s] = -np.where(high + low_ > 0, high, low_) / (m * n)
            u[:, s] = m * n - u_side if with_u else 0.0
        else:
            es[:, s] = np.where(high + low_ >= 0, high, low_) / (m * n)
            u[:, s] = u_side
    return es, u, ties.tie_term if ties is not None and with_u else np.zeros(rows)


def _next_to_equal(bits: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Per row: does sorted position ``at`` hold a weight equal to a neighbour's?"""
    keys = bits.view(np.uint64)
    rows, vocab = keys.shape
    every = np.arange(rows)
    at = at.astype(np.int64)
    here = keys[every, at]
    low = np.uint64(2**ID_BITS - 1)
    before = (at > 0) & ((here ^ keys[every, np.maximum(at - 1, 0)]) <= low)
    after = (at < vocab - 1) & ((here ^ keys[every, np.minimum(at + 1, vocab - 1)]) <= low)
    return before | after


def _tie_groups(bits: np.ndarray, ids: np.ndarray, space: _Workspace, rows: int, vocab: int) -> TieGroups:
    """Groups of exactly equal weights: neighbours in the sorted order whose packed keys
    differ only in the id bits."""
    low = np.int64(2**ID_BITS - 1)
    if vocab < 2:
        empty = np.zeros(0, np.int64)
        return TieGroups(np.zeros((rows, 0), np.int64), np.zeros((rows, 0), np.int64), empty, empty, np.zeros(0),
                         np.zeros(rows), np.zeros((rows, 0), bool))
    keys = bits.view(np.uint64)  # unsigned: a sign difference must not read as a small XOR
    xor = np.bitwise_xor(keys[:, 1:], keys[:, :-1], out=space.xor[:rows])
    tied = np.less_equal(xor, np.uint64(low), out=space.tied[:rows])  # position p ties with p + 1
    flat = np.flatnonzero(tied)  # 2-D nonzero is many times slower than the flat one
    tie_row, tie_pos = np.divmod(flat, vocab - 1)
    tie_term: Any = np.zeros(rows)
    if tie_row.size == 0:
        empty = np.zeros(0, np.int64)
        return TieGroups(np.zeros((rows, 0), np.int64), np.zeros((rows, 0), np.int64), empty, empty, np.zeros(0),
                         tie_term, tied)
    flat = tie_row * vocab + tie_pos
    breaks = np.flatnonzero(np.diff(flat) != 1)  # runs of consecutive tied positions: one group each
    run_start = np.concatenate([[0], breaks + 1])
    run_end = np.concatenate([breaks, [flat.size - 1]])
    group_row = tie_row[run_start]
    first = tie_pos[run_start]
    last = tie_pos[run_end] + 1
    lengths = last - first + 1
    t: Any = lengths.astype(np.float64)
    tie_term = np.bincount(group_row, weights=t**3 - t, minlength=rows)
    offsets: Any = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    inside = np.repeat(first, lengths) + offsets  # every position inside a group
    inside_row = np.repeat(group_row, lengths)
    shift = np.repeat((first + last) / 2, lengths) - inside
    counts = np.bincount(group_row, minlength=rows)
    width = int(counts.max())
    slot = np.arange(group_row.size) - np.repeat(np.cumsum(counts) - counts, counts)
    group_first = np.full((rows, width), vocab, dtype=np.int64)
    group_last = np.full((rows, width), vocab, dtype=np.int64)
    group_first[group_row, slot] = first
    group_last[group_row, slot] = last
    return TieGroups(group_first, group_last, inside_row.astype(np.int64), ids[inside_row, inside].astype(np.int64),
                     shift.astype(np.float64), tie_term, tied)


def _rows_with_tied_extremes(ties: TieGroups, at_top: np.ndarray, at_bottom: np.ndarray) -> np.ndarray:
    """Rows whose highest or lowest running sum sits at a member inside a tie group. Elsewhere
    the tie-aware extremes equal the sort-order ones: moving a member to its group's end
    only lowers its "after" value, and to its group's start only raises its "before" value."""
    tied = ties.tied
    rows, pairs = tied.shape
    every = np.arange(rows)

    def inside(at: np.ndarray) -> np.ndarray:  # tied with the next position or the previous one
        at = at.astype(np.int64)
        after = (at < pairs) & tied[every, np.minimum(at, pairs - 1)]
        before = (at > 0) & tied[every, np.clip(at - 1, 0, pairs - 1)]
        return after | before

    return np.flatnonzero(inside(at_top) | inside(at_bottom)) if pairs else np.zeros(0, np.int64)


def _tie_aware_extremes(positions: np.ndarray, ties: TieGroups, row: int, m: int, vocab: int) -> tuple[int, int]:
    """Highest S and lowest S - n of one row with every member of a tie group at the group's
    last position (for "after" values) and first position (for "before" values)."""
    positions = positions.astype(np.int64)
    first, last = ties.first[row], ties.last[row]
    at = np.searchsorted(first, positions, side="right") - 1
    inside = (at >= 0) & (positions <= last[np.clip(at, 0, None)])
    late = np.where(inside, last[np.clip(at, 0, None)], positions)
    early = np.where(inside, first[np.clip(at, 0, None)], positions)
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
