"""Per-row statistics of a chunk of logit weights: moments and the most extreme tokens.

Both are written for throughput on a chunk already in memory (rows x vocab), with no
chunk-sized allocation of their own (reused workspaces) and few passes over the data:

* moments: the centred weights ``c = w - mean`` (the mean comes exactly from the
  unembedding's mean column, not from a pass) and their squares go side by side into one
  workspace, and a single batched matrix product of ``[c, c^2]`` with itself gives
  ``sum c^2``, ``sum c^3`` and ``sum c^4`` of every row at BLAS speed;
* extremes: the vocabulary is cut into ``STRIPES`` interleaved blocks whose maxima (and
  minima) take one vectorised pass; the k largest weights of a row lie in the k blocks
  with the largest maxima, so an exact ``topk`` then runs on those ``k * STRIPES`` weights
  only (plus the few left over when the vocabulary is not a multiple of ``STRIPES``).
"""

from __future__ import annotations

import torch

STRIPES = 64  # tokens per block for the extremes (the block maxima take one pass)
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
    rows, vocab = weights.shape
    workspace = workspace or MomentWorkspace(vocab, weights.device)
    out = torch.empty(rows, 3, dtype=torch.float64)
    for start in range(0, rows, MOMENT_ROWS):
        stop = min(rows, start + MOMENT_ROWS)
        pair = workspace.get(stop - start, vocab, weights.device)
        mean = means[start:stop].to(weights.device, torch.float32)[:, None]
        torch.sub(weights[start:stop], mean, out=pair[:, 0])
        torch.mul(pair[:, 0], pair[:, 0], out=pair[:, 1])
        gram = torch.bmm(pair, pair.transpose(1, 2)).cpu().double()  # [[c.c, c.c2], [c2.c, c2.c2]]
        out[start:stop, 0] = gram[:, 0, 0]
        out[start:stop, 1] = gram[:, 0, 1]
        out[start:stop, 2] = gram[:, 1, 1]
    return out


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
    if means is None:
        means = weights.double().mean(dim=1).cpu()
    return moments_from_sums(means, power_sums(weights, means), weights.shape[1])


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
    offsets = torch.arange(STRIPES, device=weights.device) * blocks
    out = []
    for largest in (True, False):
        block_extremes = striped.amax(dim=1) if largest else striped.amin(dim=1)
        chosen = block_extremes.topk(k, dim=1, largest=largest).indices  # rows x k blocks
        ids = (chosen[:, :, None] + offsets).reshape(rows, -1)
        tail = torch.arange(blocks * STRIPES, vocab, device=weights.device).expand(rows, -1)
        ids = torch.cat([ids, tail], dim=1)
        values, where = weights.gather(1, ids).topk(k, dim=1, largest=largest)
        out += [values, ids.gather(1, where)]
    return out[0], out[1], out[2], out[3]
