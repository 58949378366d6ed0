"""Per-row statistics of a chunk of logit weights: moments and the most extreme tokens.

Both are written for throughput on a chunk already in memory (rows x vocab), with no
chunk-sized allocation of their own (reused workspaces) and few passes over the data:

* moments: the centred weights ``c = w - mean`` (the mean comes exactly from the
  unembedding's mean column, not from a pass) and their squares go side by side into one
  workspace, and a single batched matrix product of ``[c, c^2]`` with itself gives
  ``sum c^2``, ``sum c^3`` and ``sum c^4`` of every row at BLAS speed;
* extremes: the vocabulary is cut into interleaved blocks of ``STRIPES`` tokens. The
  maxima of ``c^2`` per block (one pass over the squares, while they are at hand) name
  the ``4k`` blocks of largest ``|c|``; an exact ``topk`` of the raw weights then runs on
  those ``4k * STRIPES`` tokens (plus the few left over when the vocabulary is not a
  multiple of ``STRIPES``). Every other token has ``c^2`` at most the 4k-th block maximum
  ``T``, so the result is exact whenever the k-th largest candidate has ``c > 0`` and
  ``c^2 > T`` (and likewise below); the rare rows that fail (one tail much heavier than
  the other, constant rows) are redone with block maxima and minima of the weights.
"""

from __future__ import annotations

from concurrent.futures import Executor

import torch

from .moments_cpu import chunk_statistics_cpu

STRIPES = 32  # tokens per interleaved block for the extremes (32: fastest at a 50k vocabulary)
MOMENT_ROWS = 64  # rows per batched product (a workspace of 2 x 64 x vocab floats)


class MomentWorkspace:
    """Reusable ``rows x 2 x vocab`` float32 buffer for ``[c, c^2]``."""

    def __init__(self, vocab: int, device: torch.device) -> None:
        self.buffer = torch.empty(0, 2, vocab, device=device)

    def get(self, rows: int, vocab: int, device: torch.device) -> torch.Tensor:
        if self.buffer.shape[0] < rows or self.buffer.shape[2] != vocab or self.buffer.device != device:
            self.buffer = torch.empty(rows, 2, vocab, device=device)
        return self.buffer[:rows]


def power_sums(weights: torch.Tensor, means: torch.Tensor, workspace: MomentWorkspace | None = None) -> torch.Tensor:
    """``(sum c^2, sum c^3, sum c^4)`` per row of ``weights`` (float64 on the CPU, shape
    rows x 3) with ``c = w - mean`` and ``means`` the rows' means (float64)."""
    return chunk_statistics(weights, means.double().cpu(), 0, workspace)[0]


def chunk_statistics(
    weights: torch.Tensor, means: torch.Tensor, k: int, workspace: MomentWorkspace | None = None,
    pool: Executor | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
    """``(sums, extremes)``: ``power_sums`` and, when ``k > 0``, ``extremes(weights, k)``
    (the same values), computed together; on the CPU by ``moments_cpu`` on ``pool``'s
    threads, elsewhere by torch on the weights' device."""
    if weights.device.type == "cpu":
        sums, ends = chunk_statistics_cpu(weights.numpy(), means.numpy(), k, STRIPES, pool)
        return torch.from_numpy(sums), None if ends is None else tuple(torch.from_numpy(part) for part in ends)
    return chunk_statistics_torch(weights, means, k, workspace)


def chunk_statistics_torch(
    weights: torch.Tensor, means: torch.Tensor, k: int, workspace: MomentWorkspace | None = None
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
    """``chunk_statistics`` with torch operations on any device (used for accelerators)."""
    rows, vocab = weights.shape
    workspace = workspace or MomentWorkspace(vocab, weights.device)
    sums = torch.empty(rows, 3, dtype=torch.float64)
    blocks = vocab // STRIPES
    striped = k > 0 and blocks >= 16 * k
    parts: list[tuple[torch.Tensor, ...]] = []
    for start in range(0, rows, MOMENT_ROWS):
        stop = min(rows, start + MOMENT_ROWS)
        pair = workspace.get(stop - start, vocab, weights.device)
        mean = means[start:stop].to(weights.device, torch.float32)[:, None]
        torch.sub(weights[start:stop], mean, out=pair[:, 0])
        torch.mul(pair[:, 0], pair[:, 0], out=pair[:, 1])
        gram = torch.bmm(pair, pair.transpose(1, 2)).cpu().double()  # [[c.c, c.c2], [c2.c, c2.c2]]
        sums[start:stop, 0] = gram[:, 0, 0]
        sums[start:stop, 1] = gram[:, 0, 1]
        sums[start:stop, 2] = gram[:, 1, 1]
        if striped:
            parts.append(_extremes_from_squares(weights[start:stop], pair[:, 1], mean, k, blocks))
    if not k:
        return sums, None
    if not striped:
        return sums, extremes(weights, k)
    return sums, tuple(torch.cat(column) for column in zip(*parts))


def _extremes_from_squares(
    weights: torch.Tensor, squares: torch.Tensor, mean: torch.Tensor, k: int, blocks: int
) -> tuple[torch.Tensor, ...]:
    rows, vocab = weights.shape
    block_max = squares[:, : blocks * STRIPES].view(rows, STRIPES, blocks).amax(dim=1)
    largest = block_max.topk(4 * k, dim=1)  # 4k: both tails' k most extreme are inside, but for skewed rows
    threshold = largest.values[:, -1]  # every token outside the chosen blocks has c^2 <= this
    ids = _block_tokens(largest.indices, blocks, vocab)
    candidates = weights.gather(1, ids)
    top_v, top_at = candidates.topk(k, dim=1)
    bot_v, bot_at = candidates.topk(k, dim=1, largest=False)
    c_top = top_v[:, -1:] - mean  # the same float32 operations as the pass over the weights
    c_bot = bot_v[:, -1:] - mean
    exact = (c_top[:, 0] > 0) & (c_top[:, 0] * c_top[:, 0] > threshold)
    exact &= (c_bot[:, 0] < 0) & (c_bot[:, 0] * c_bot[:, 0] > threshold)
    out = [top_v, ids.gather(1, top_at), bot_v, ids.gather(1, bot_at)]
    redo = (~exact).nonzero()[:, 0]
    if redo.numel():
        for column, value in zip(out, extremes(weights[redo], k)):
            column[redo] = value
    return tuple(out)


def _block_tokens(chosen: torch.Tensor, blocks: int, vocab: int) -> torch.Tensor:
    """Token ids of the chosen interleaved blocks (block b: b + j * blocks), then the tail."""
    rows = chosen.shape[0]
    offsets = torch.arange(STRIPES, device=chosen.device) * blocks
    ids = (chosen[:, :, None] + offsets).reshape(rows, -1)
    tail = torch.arange(blocks * STRIPES, vocab, device=chosen.device).expand(rows, -1)
    return torch.cat([ids, tail], dim=1)


def moments_from_sums(means: torch.Tensor, sums: torch.Tensor, vocab: int) -> torch.Tensor:
    """Rows of (mean, std, skew, kurtosis): population moments, PLAIN kurtosis (3 for a
    Gaussian); NaN skew and kurtosis for constant rows."""
    m2, m3, m4 = (sums[:, i] / vocab for i in range(3))
    with torch.no_grad():
        skew = m3 / m2.pow(1.5)
        kurtosis = m4 / m2.square()
    return torch.stack([means.double().cpu(), m2.sqrt(), skew, kurtosis], dim=1)


def moments(weights: torch.Tensor, means: torch.Tensor | None = None) -> torch.Tensor:
    """(mean, std, skew, kurtosis) per row of ``weights``; ``means`` default to a pass."""
    means = weights.double().mean(dim=1).cpu() if means is None else means.double().cpu()
    return moments_from_sums(means, power_sums(weights.contiguous(), means), weights.shape[1])


def extremes(weights: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(top_values, top_ids, bottom_values, bottom_ids)``: the ``k`` largest weights of
    each row in descending order and the ``k`` smallest in ascending order (exact; among
    exactly equal weights the choice is ``torch.topk``'s)."""
    rows, vocab = weights.shape
    blocks = vocab // STRIPES
    if k == 0 or blocks < 4 * k:  # small vocabularies: a plain topk is as fast
        top = weights.topk(k, dim=1)
        bottom = weights.topk(k, dim=1, largest=False)
        return top.values, top.indices, bottom.values, bottom.indices
    striped = weights[:, : blocks * STRIPES].view(rows, STRIPES, blocks)  # block b: tokens b + j * blocks
    out = []
    for largest in (True, False):
        block_extremes = striped.amax(dim=1) if largest else striped.amin(dim=1)
        ids = _block_tokens(block_extremes.topk(k, dim=1, largest=largest).indices, blocks, vocab)
        values, where = weights.gather(1, ids).topk(k, dim=1, largest=largest)
        out += [values, ids.gather(1, where)]
    return out[0], out[1], out[2], out[3]
