"""The CPU kernel of ``moments.chunk_statistics``: the same computation in numpy, on blocks
of a few rows, run by a pool of Python threads.

Why not torch on the CPU: each torch operation is its own OpenMP parallel region, so a
chunk's statistics are dozens of barriers; on a machine whose other cores are busy one
late thread stalls every barrier (measured: 2 threads, one core busy elsewhere, the
statistics ran 8x slower than with 1 thread). Blocks of ``STAT_ROWS`` rows on a thread
pool need no barrier, each block's buffers stay in the core's cache, and numpy releases
the GIL in every call used here. Same method as the torch path (see ``moments``):
``[c, c^2]`` in a per-thread workspace, three BLAS dot products per row, and the striped
block maxima of ``c^2`` for the top / bottom tokens with an exact fallback.
"""

from __future__ import annotations

import threading
from concurrent.futures import Executor

import numpy as np

STAT_ROWS = 8  # rows per task: 2 x 8 x vocab floats of workspace (3.2 MB at a 50k vocabulary)

_LOCAL = threading.local()


def _pair(rows: int, vocab: int) -> np.ndarray:
    pair = getattr(_LOCAL, "pair", None)
    if pair is None or pair.shape[0] < rows or pair.shape[2] != vocab:
        pair = _LOCAL.pair = np.empty((max(rows, STAT_ROWS), 2, vocab), dtype=np.float32)
    return pair[:rows]


def chunk_statistics_cpu(
    weights: np.ndarray, means: np.ndarray, k: int, stripes: int, pool: Executor | None = None
) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
    """``(sums, extremes)`` of ``weights`` (float32, rows x vocab; ``means`` float64): sums
    as rows x 3 float64, extremes as (top values, top ids, bottom values, bottom ids)."""
    rows = weights.shape[0]
    starts = range(0, rows, STAT_ROWS)
    task = lambda start: _block(weights[start : start + STAT_ROWS], means[start : start + STAT_ROWS], k, stripes)  # noqa: E731
    parts = list(pool.map(task, starts) if pool is not None else map(task, starts))
    sums = np.concatenate([part[0] for part in parts])
    if not k:
        return sums, None
    return sums, tuple(np.concatenate([part[1][i] for part in parts]) for i in range(4))  # type: ignore[index]


def _block(w: np.ndarray, means: np.ndarray, k: int, stripes: int) -> tuple[np.ndarray, tuple | None]:
    rows, vocab = w.shape
    pair = _pair(rows, vocab)
    c, squares = pair[:, 0], pair[:, 1]
    mean = means.astype(np.float32)[:, None]
    np.subtract(w, mean, out=c)
    np.multiply(c, c, out=squares)
    sums = np.empty((rows, 3))
    for i in range(rows):  # BLAS dot products: faster here than any batched form
        sums[i] = np.dot(c[i], c[i]), np.dot(c[i], squares[i]), np.dot(squares[i], squares[i])
    if not k:
        return sums, None
    blocks = vocab // stripes
    if blocks < 16 * k:
        return sums, exact_extremes(w, k)
    return sums, _striped_extremes(w, squares, mean, k, stripes, blocks)


def _striped_extremes(w: np.ndarray, squares: np.ndarray, mean: np.ndarray, k: int, stripes: int,
                      blocks: int) -> tuple[np.ndarray, ...]:
    rows, vocab = w.shape
    block_max = squares[:, : blocks * stripes].reshape(rows, stripes, blocks).max(axis=1)
    chosen = np.argpartition(block_max, blocks - 4 * k, axis=1)[:, blocks - 4 * k :]  # the 4k largest
    threshold = _take_rows(block_max, chosen).min(axis=1)  # every token outside them: c^2 <= this
    ids = (chosen[:, :, None] + np.arange(stripes) * blocks).reshape(rows, -1)
    ids = np.concatenate([ids, np.broadcast_to(np.arange(blocks * stripes, vocab), (rows, vocab - blocks * stripes))],
                         axis=1)
    top_v, top_i, bot_v, bot_i = exact_extremes(_take_rows(w, ids), k)
    top_i, bot_i = _take_rows(ids, top_i), _take_rows(ids, bot_i)
    c_top = top_v[:, -1] - mean[:, 0]  # the same float32 operations as the pass over the weights
    c_bot = bot_v[:, -1] - mean[:, 0]
    exact = (c_top > 0) & (c_top * c_top > threshold) & (c_bot < 0) & (c_bot * c_bot > threshold)
    redo = np.flatnonzero(~exact)
    if redo.size:
        for column, value in zip((top_v, top_i, bot_v, bot_i), exact_extremes(w[redo], k)):
            column[redo] = value
    return top_v, top_i, bot_v, bot_i


def exact_extremes(w: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """The ``k`` largest values of each row (descending) with their column indices, and the
    ``k`` smallest (ascending), by partitioning."""
    rows, vocab = w.shape
    if k >= vocab:
        order = np.argsort(-w, axis=1, kind="stable")
        top_i, bot_i = order[:, :k], order[:, ::-1][:, :k]
    else:
        top_i = np.argpartition(w, vocab - k, axis=1)[:, vocab - k :]
        bot_i = np.argpartition(w, k - 1, axis=1)[:, :k]
    top_v, bot_v = _take_rows(w, top_i), _take_rows(w, bot_i)
    up, down = np.argsort(-top_v, axis=1, kind="stable"), np.argsort(bot_v, axis=1, kind="stable")
    top_i, bot_i = _take_rows(top_i, up), _take_rows(bot_i, down)
    return _take_rows(w, top_i), top_i.astype(np.int64), _take_rows(w, bot_i), bot_i.astype(np.int64)


def _take_rows(a: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``a[r, index[r, j]]`` for every row r (``take_along_axis`` without its overhead)."""
    a = np.ascontiguousarray(a)
    flat = index + (np.arange(a.shape[0]) * a.shape[1])[:, None]
    return a.reshape(-1).take(flat)
