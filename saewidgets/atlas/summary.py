"""What one batch sends back: the SAE encoding and the top-k bookkeeping, run inside the trace.

``BatchSummary`` is the ``fn`` of an engine ``Read`` on the SAE's hook (positions "all"): it
encodes the residual stream with the SAE and reduces the rows x width x d_sae activations to
sparse per-batch results, so that a remote (NDIF) run returns those and never the residual
stream. It is given the collection's running thresholds, so after the first batches only
contexts that can still enter a feature's top-k or a quantile sample come back.

What it returns (a tuple of tensors, see ``FIELDS``): per fired feature its count, activation
sum and new histogram range; the histogram's nonzero bins; top-k candidates and quantile
candidates (feature, row, peak position, activation, random key, the feature's activations in
the token window around the peak); co-activation pair counts and (feature, token) counts
among each token's ``pairs`` strongest features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

FIELDS = ("fired", "fired_n", "fired_sum", "range_f", "range_v", "hist_code", "hist_n",
          "top_f", "top_r", "top_p", "top_v", "top_w",
          "q_f", "q_r", "q_p", "q_v", "q_key", "q_w",
          "pair_code", "pair_n", "tok_code", "tok_n", "tok_sum", "n_tokens")


def hash_keys(chunks: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """A uniform pseudo-random key in [0, 1) per (chunk, feature), the same in every run and batching."""
    x = (chunks.to(torch.int64) * 0x9E3779B1 + features.to(torch.int64) * 0x85EBCA77 + 0x165667B1) & 0xFFFFFFFF
    x = x ^ (x >> 15)
    x = (x * 0x2C1B3C6D) & 0xFFFFFFFF
    x = x ^ (x >> 12)
    x = (x * 0x297A2D39) & 0xFFFFFFFF
    x = x ^ (x >> 15)
    return x.to(torch.float64) / 4294967296.0


def next_range(peak: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """The histogram range after seeing ``peak``: unchanged while peak < range, else the power of
    two above the peak (ranges only double, so old bins merge exactly)."""
    above = peak >= current
    grown = torch.exp2(torch.floor(torch.log2(peak.clamp_min(1e-30).double())) + 1).to(current.dtype)
    return torch.where(above & (peak > 0), torch.maximum(grown, current), current)


@dataclass
class BatchSummary:
    """The in-trace reduction of one batch (see the module docstring)."""

    sae: Any
    chunk_ids: torch.Tensor  # rows
    token_ids: torch.Tensor  # rows x width (padded)
    counted: torch.Tensor  # rows x width bool: real, non-BOS tokens
    ranges: torch.Tensor  # d_sae: current histogram ranges (0 = none yet)
    top_threshold: torch.Tensor  # d_sae: the k-th best peak so far (0 until k are kept)
    q_threshold: torch.Tensor  # d_sae x groups: the largest kept key per interval (2 = not full)
    k: int
    before: int
    after: int
    groups: int
    bins: int
    pairs: int
    vocab: int

    def __call__(self, h: torch.Tensor, mask: torch.Tensor) -> tuple:
        device = h.device
        counted = self.counted.to(device)
        with torch.no_grad():
            acts = self.sae.encode(h.to(self.sae.device)).float().to(device)
            rows, width, n_features = acts.shape
            # one dense pass: the nonzero activations; everything else works on them
            r, p, f = acts.nonzero(as_tuple=True)
            keep = counted[r, p]
            r, p, f = r[keep], p[keep], f[keep]
            values = acts[r, p, f]
            n = torch.bincount(f, minlength=n_features)
            total = torch.zeros(n_features, dtype=torch.float64, device=device).index_add_(0, f, values.double())
            fired = n.nonzero().flatten()
            peak = torch.zeros(n_features, device=device).scatter_reduce_(0, f, values, "amax")
            ranges = self.ranges.to(device)
            new_ranges = next_range(peak, ranges)
            changed = (new_ranges != ranges).nonzero().flatten()

            # the histogram of nonzero activations, on the (possibly grown) ranges
            bins = (values / new_ranges[f] * self.bins).long().clamp_(0, self.bins - 1)
            hist_code, hist_n = torch.unique(f * self.bins + bins, return_counts=True)

            # per row: each feature's peak (value, and its first position)
            cell = r * n_features + f
            row_max = torch.zeros(rows * n_features, device=device).scatter_reduce_(0, cell, values, "amax")
            at_max = values == row_max[cell]
            row_arg = torch.zeros(rows * n_features, dtype=torch.long, device=device).scatter_reduce_(
                0, cell[at_max], p[at_max], "amin", include_self=False)
            row_max, row_arg = row_max.view(rows, n_features), row_arg.view(rows, n_features)

            # top-k candidates: rows at least as strong as this batch's k-th and the k-th kept so far
            # (ties included, so that which of equal contexts is kept does not depend on the batching)
            kth = row_max.topk(min(self.k, rows), dim=0).values[-1]
            bar = torch.maximum(kth, self.top_threshold.to(device))
            top_r, top_f = ((row_max >= bar[None, :]) & (row_max > 0)).nonzero(as_tuple=True)
            top_v, top_p = row_max[top_r, top_f], row_arg[top_r, top_f]

            # quantile candidates: a (row, feature) peak whose key can still enter its interval's sample
            rr, ff = (row_max > 0).nonzero(as_tuple=True)
            vv = row_max[rr, ff]
            group = (vv / new_ranges[ff] * self.groups).long().clamp_(0, self.groups - 1)
            keys = hash_keys(self.chunk_ids.to(device)[rr], ff)
            limit = self.q_threshold.to(device)[ff, group].double()
            grown = torch.zeros(n_features, dtype=torch.bool, device=device)
            grown[changed] = True
            accept = (keys < limit) | grown[ff]
            q_f, q_r, q_v, q_key = ff[accept], rr[accept], vv[accept], keys[accept]
            q_p = row_arg[q_r, q_f]

            # each token's strongest features: co-activation pairs and (feature, token) counts
            m = min(self.pairs, n_features)
            token = r * width + p
            order = torch.argsort(-values, stable=True)
            order = order[torch.argsort(token[order], stable=True)]
            t_sorted = token[order]
            rank = torch.arange(t_sorted.numel(), device=device) - torch.searchsorted(t_sorted, t_sorted)
            strong = order[rank < m]
            s_token, s_f, s_v = token[strong], f[strong], values[strong]
            tok_ids = self.token_ids.to(device).reshape(-1)[s_token]
            tok_code, tok_inverse, tok_n = torch.unique(s_f * self.vocab + tok_ids, return_inverse=True,
                                                        return_counts=True)
            tok_sum = torch.zeros(tok_code.shape[0], dtype=torch.float64, device=device)
            tok_sum.index_add_(0, tok_inverse, s_v.double())
            slots = torch.full((rows * width, m), -1, dtype=torch.long, device=device)
            slots[s_token, rank[rank < m]] = s_f
            live = slots[slots[:, 0] >= 0]
            i, j = torch.triu_indices(m, m, 1, device=device)
            a, b = live[:, i], live[:, j]
            both = (a >= 0) & (b >= 0)
            codes = torch.minimum(a, b) * n_features + torch.maximum(a, b)
            pair_code, pair_n = torch.unique(codes[both], return_counts=True)

            return (fired, n[fired], total[fired], changed, new_ranges[changed], hist_code, hist_n,
                    top_f, top_r, top_p, top_v, self._windows(acts, top_r, top_p, top_f),
                    q_f, q_r, q_p, q_v, q_key, self._windows(acts, q_r, q_p, q_f),
                    pair_code, pair_n, tok_code, tok_n, tok_sum, counted.sum())

    def _windows(self, acts: torch.Tensor, r: torch.Tensor, p: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """The feature's activations at the ``before + 1 + after`` positions around each peak (0 outside)."""
        width = acts.shape[1]
        offsets = torch.arange(-self.before, self.after + 1, device=acts.device)
        index = p[:, None] + offsets[None, :]
        inside = (index >= 0) & (index < width)
        values = acts[r[:, None], index.clamp(0, width - 1), f[:, None]]
        # float16 on the way back (display precision; the peak's exact value travels separately)
        return torch.where(inside, values, torch.zeros_like(values)).half()
