"""The running state of a collection: bounded whatever the corpus size.

Per feature: counts, activation sums, a histogram whose range doubles when needed (old bins
merge exactly), the top-k contexts and, per fine activation interval, a bottom-``samples``
sketch of random keys (a uniform sample of the contexts in that interval; merging two
intervals keeps the smallest keys of both, which is again a uniform sample). Co-activation
pairs and (feature, token) counts are sparse tables pruned to a fixed capacity. Everything
lives on the SAE's device as torch tensors, except the two sparse tables (numpy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

EMPTY_KEY = 2.0  # keys are in [0, 1): an empty sample slot


@dataclass(frozen=True)
class Settings:
    k: int = 20
    before: int = 10
    after: int = 5
    groups: int = 20  # fine activation intervals (shown merged into about half as many)
    samples: int = 3  # contexts kept per fine interval
    bins: int = 64
    pairs: int = 4  # strongest features per token for co-activation and token counts
    seq_len: int = 128
    pair_capacity: int = 32  # co-activation pairs kept, per feature
    token_capacity: int = 128  # (feature, token) entries kept, per feature

    @property
    def window(self) -> int:
        return self.before + 1 + self.after

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


class SparseCounts:
    """A sparse table ``code -> (count, sum)``, pruned to ``capacity`` entries by count."""

    def __init__(self, capacity: int, codes: np.ndarray | None = None, counts: np.ndarray | None = None,
                 sums: np.ndarray | None = None, pruned: int = 0) -> None:
        self.capacity = capacity
        self.codes: Any = np.zeros(0, np.int64) if codes is None else codes.astype(np.int64)
        self.counts: Any = np.zeros(0, np.int64) if counts is None else counts.astype(np.int64)
        self.sums: Any = np.zeros(0, np.float64) if sums is None else sums.astype(np.float64)
        self.pruned = pruned  # the largest count dropped so far (0: the table is exact)

    def add(self, codes: np.ndarray, counts: np.ndarray, sums: np.ndarray | None = None) -> None:
        if codes.size == 0:
            return
        all_codes = np.concatenate([self.codes, codes.astype(np.int64)])
        merged, inverse = np.unique(all_codes, return_inverse=True)
        self.counts = np.bincount(inverse, weights=np.concatenate([self.counts, counts]).astype(np.float64),
                                  minlength=merged.size).round().astype(np.int64)
        extra = np.zeros(codes.size) if sums is None else sums
        self.sums = np.bincount(inverse, weights=np.concatenate([self.sums, extra]), minlength=merged.size)
        self.codes = merged
        if merged.size > 2 * self.capacity:
            self.prune()

    def prune(self) -> None:
        if self.codes.size <= self.capacity:
            return
        order = np.argsort(-self.counts, kind="stable")
        self.pruned = max(self.pruned, int(self.counts[order[self.capacity]]))
        keep = np.sort(order[: self.capacity])
        self.codes, self.counts, self.sums = self.codes[keep], self.counts[keep], self.sums[keep]


class State:
    """Everything counted so far (see the module docstring)."""

    def __init__(self, d_sae: int, settings: Settings, device: Any = "cpu") -> None:
        s, F, W = settings, d_sae, settings.window
        self.settings, self.d_sae, self.device = s, d_sae, torch.device(device)
        z: dict[str, Any] = {"device": self.device}
        self.chunks_done = 0
        self.n_tokens = 0
        self.count = torch.zeros(F, dtype=torch.int64, **z)
        self.total = torch.zeros(F, dtype=torch.float64, **z)
        self.hist = torch.zeros(F, s.bins, dtype=torch.int64, **z)
        self.ranges = torch.zeros(F, dtype=torch.float32, **z)
        self.top = Slots((F, s.k), W, empty_value=-1.0, **z)
        self.quant = Slots((F, s.groups, s.samples), W, empty_value=-1.0, **z)
        self.quant.key.fill_(EMPTY_KEY)
        self.pairs = SparseCounts(s.pair_capacity * F)
        self.tokens = SparseCounts(s.token_capacity * F)

    # -- thresholds sent into the next trace ---------------------------------------------------
    def top_threshold(self) -> torch.Tensor:
        """The k-th best peak kept per feature (0 until k are kept)."""
        return self.top.value.min(dim=1).values.clamp_min(0.0)

    def q_threshold(self) -> torch.Tensor:
        """The largest key kept per interval (EMPTY_KEY while the interval's sample is not full)."""
        return self.quant.key.max(dim=-1).values

    # -- one batch's results ------------------------------------------------------------------
    def grow_ranges(self, features: torch.Tensor, new: torch.Tensor) -> None:
        """Double the histogram and interval ranges of ``features`` to ``new``: old bins merge."""
        if features.numel() == 0:
            return
        s = self.settings
        old = self.ranges[features]
        factor = torch.where(old > 0, (new / old.clamp_min(1e-30)).round(), torch.ones_like(new)).long()
        # histogram bins b -> b // factor
        bins = torch.arange(s.bins, device=self.device)
        target = bins[None, :] // factor[:, None]
        merged = torch.zeros(features.numel(), s.bins, dtype=torch.int64, device=self.device)
        merged.scatter_add_(1, target, self.hist[features])
        self.hist[features] = merged
        self.ranges[features] = new.to(self.ranges.dtype)
        # quantile intervals g -> g // factor: re-sort the samples of features that have some
        had = old > 0
        if bool(had.any()):
            groups = torch.arange(s.groups, device=self.device)[None, :, None] // factor[had, None, None]
            self.quant.regroup(features[had], groups.expand(-1, -1, s.samples))

    def add_top(self, f, value, doc, pos, tokens, acts) -> None:
        self.top.merge(f, torch.zeros_like(f), value, -value.double(), doc, pos, tokens, acts)

    def add_quantiles(self, f, group, value, key, doc, pos, tokens, acts) -> None:
        self.quant.merge(f, group, value, key, doc, pos, tokens, acts)

    # -- checkpoints ------------------------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        tensors = {"count": self.count, "total": self.total, "hist": self.hist, "ranges": self.ranges}
        out: dict[str, Any] = {name: t.cpu().numpy() for name, t in tensors.items()}
        out.update(self.top.arrays("top_"))
        out.update(self.quant.arrays("quant_"))
        for name, table in (("pairs", self.pairs), ("tokens", self.tokens)):
            out[f"{name}_codes"], out[f"{name}_counts"], out[f"{name}_sums"] = table.codes, table.counts, table.sums
        out["scalars"] = np.array([self.chunks_done, self.n_tokens, self.pairs.pruned, self.tokens.pruned], np.int64)
        return out

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        def t(name: str) -> torch.Tensor:
            return torch.from_numpy(arrays[name]).to(self.device)

        self.count, self.total, self.hist, self.ranges = t("count"), t("total"), t("hist"), t("ranges")
        self.top.load(arrays, "top_", self.device)
        self.quant.load(arrays, "quant_", self.device)
        self.chunks_done, self.n_tokens, pairs_pruned, tokens_pruned = (int(x) for x in arrays["scalars"])
        self.pairs = SparseCounts(self.pairs.capacity, arrays["pairs_codes"], arrays["pairs_counts"],
                                  arrays["pairs_sums"], pairs_pruned)
        self.tokens = SparseCounts(self.tokens.capacity, arrays["tokens_codes"], arrays["tokens_counts"],
                                   arrays["tokens_sums"], tokens_pruned)


class Slots:
    """Kept contexts, ``shape`` = (features, *slots): per slot a peak activation, a sort key,
    the document and the peak's position in it, and the token window (ids, activations)."""

    FIELDS = ("value", "key", "doc", "pos", "tokens", "acts")

    def __init__(self, shape: tuple[int, ...], window: int, empty_value: float, device: Any) -> None:
        z = dict(device=device)
        self.shape = shape
        self.value = torch.full(shape, empty_value, dtype=torch.float32, **z)
        self.key = torch.zeros(shape, dtype=torch.float64, **z)  # sorted ascending within a group
        self.doc = torch.full(shape, -1, dtype=torch.int64, **z)
        self.pos = torch.zeros(shape, dtype=torch.int32, **z)
        self.tokens = torch.full((*shape, window), -1, dtype=torch.int32, **z)
        self.acts = torch.zeros((*shape, window), dtype=torch.float32, **z)
        if len(shape) == 2:  # top-k: key = -value; an empty slot sorts last
            self.key.fill_(1.0)

    @property
    def per_group(self) -> int:
        return self.shape[-1]

    @property
    def n_groups(self) -> int:
        return self.shape[1] if len(self.shape) == 3 else 1

    def _flat(self, features: torch.Tensor) -> list[torch.Tensor]:
        m = features.numel()
        return [getattr(self, name)[features].reshape(m * self.n_groups * self.per_group, *getattr(self, name).shape[
            len(self.shape):]) for name in self.FIELDS]

    def merge(self, f, group, value, key, doc, pos, tokens, acts) -> None:
        """Add candidates: keep, per (feature, group), the ``per_group`` smallest (key, doc). Slots are
        not kept in order: a winning candidate takes the slot of an entry it pushed out, so only
        the contexts that enter are written."""
        if f.numel() == 0:
            return
        G, S = self.n_groups, self.per_group
        device = f.device
        cells, local = torch.unique(f * G + group, return_inverse=True)
        m, n = cells.numel(), f.numel()
        order = torch.argsort(local, stable=True)  # candidates arrive in corpus order
        sorted_local = local[order]
        column = torch.arange(n, device=device) - torch.searchsorted(sorted_local, sorted_local)
        width = int(column.max()) + 1
        keys = torch.full((m, width), float("inf"), dtype=torch.float64, device=device)
        keys[sorted_local, column] = key[order].double()
        docs = torch.full((m, width), 2**62, dtype=torch.int64, device=device)
        docs[sorted_local, column] = doc[order].long()
        flat_key, flat_doc = self.key.view(-1, S), self.doc.view(-1, S)
        all_keys = torch.cat([flat_key[cells], keys], dim=1)
        all_docs = torch.cat([flat_doc[cells], docs], dim=1)
        by = torch.argsort(all_docs, dim=1, stable=True)
        by = by.gather(1, torch.argsort(all_keys.gather(1, by), dim=1, stable=True))
        winner = torch.zeros_like(all_keys, dtype=torch.bool).scatter_(1, by[:, :S], True)
        out_rows, out_slots = (~winner[:, :S]).nonzero(as_tuple=True)  # pushed out: as many as came in
        in_rows, in_cols = winner[:, S:].nonzero(as_tuple=True)
        source = torch.full((m, width), -1, dtype=torch.long, device=device)
        source[sorted_local, column] = order
        source = source[in_rows, in_cols]
        target = cells[out_rows]
        for name, data in zip(self.FIELDS, (value, key, doc, pos, tokens, acts)):
            full = getattr(self, name)
            flat = full.view(-1, S, *full.shape[len(self.shape):])
            flat[target, out_slots] = data[source].to(full.dtype)

    def regroup(self, features: torch.Tensor, groups: torch.Tensor) -> None:
        """Move the slots of ``features`` to new groups (features x groups x per_group), re-sorted."""
        self._rebuild(features, groups, None)

    def _rebuild(self, features, groups, extra) -> None:
        m, G, S = features.numel(), self.n_groups, self.per_group
        value, key, doc, pos, tokens, acts = self._flat(features)
        local = torch.arange(m, device=features.device).repeat_interleave(G * S)
        group = (groups.reshape(-1) if groups is not None
                 else torch.arange(G, device=features.device).repeat_interleave(S).repeat(m))
        cell = local * G + group
        if extra is not None:
            e_cell, e_value, e_key, e_doc, e_pos, e_tokens, e_acts = extra
            cell = torch.cat([cell, e_cell])
            value = torch.cat([value, e_value.float()])
            key = torch.cat([key, e_key.double()])
            doc = torch.cat([doc, e_doc.long()])
            pos = torch.cat([pos, e_pos.int()])
            tokens = torch.cat([tokens, e_tokens.int()])
            acts = torch.cat([acts, e_acts.float()])
        # by cell, then key, then document and position (equal keys: the earlier context wins)
        order = torch.argsort(pos, stable=True)
        for column in (doc, key, cell):
            order = order[torch.argsort(column[order], stable=True)]
        cell_sorted = cell[order]
        starts = torch.searchsorted(cell_sorted, cell_sorted, right=False)
        rank = torch.arange(cell_sorted.numel(), device=cell.device) - starts
        keep = rank < S
        chosen, slot_cell, slot_rank = order[keep], cell_sorted[keep], rank[keep]
        flat_index = slot_cell * S + slot_rank  # into m x G x S
        fresh = [torch.full((m * G * S, *t.shape[1:]), fill, dtype=t.dtype, device=t.device)
                 for t, fill in zip((value, key, doc, pos, tokens, acts), (-1.0, self._empty_key(), -1, 0, -1, 0.0))]
        for target, source in zip(fresh, (value, key, doc, pos, tokens, acts)):
            target[flat_index] = source[chosen]
        for name, target in zip(self.FIELDS, fresh):
            full = getattr(self, name)
            full[features] = target.reshape(m, *self.shape[1:], *full.shape[len(self.shape):])

    def _empty_key(self) -> float:
        return 1.0 if len(self.shape) == 2 else EMPTY_KEY

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {prefix + name: getattr(self, name).cpu().numpy() for name in self.FIELDS}

    def load(self, arrays: dict[str, np.ndarray], prefix: str, device: Any) -> None:
        for name in self.FIELDS:
            setattr(self, name, torch.from_numpy(arrays[prefix + name]).to(device))
