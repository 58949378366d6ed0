"""Turning rows into one left-padded batch and per-point edit plans (no model call here).

A *point* is where the engine touches the residual stream: the input (``resid_pre``) or the
output (``resid_post``) of a block. nnsight wants modules touched in the order the model runs
them, so points are sorted by ``order``: resid_pre[l] < resid_post[l] < resid_pre[l + 1], and the
logits come last.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from .edits import Edit, Read, Row


def point_order(layer: int, site: str) -> tuple[int, int]:
    return (layer, 0 if site == "resid_pre" else 1)


@dataclass
class Plan:
    """Every edit at one point, as batched tensors (``None`` when a kind is absent)."""

    layer: int
    site: str
    replace_all_rows: torch.Tensor | None = None  # bool rows
    replace_all: torch.Tensor | None = None  # rows x d
    add_all: torch.Tensor | None = None  # rows x d
    replace_at: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # row idx, padded pos idx, n x d
    add_at: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
    clamp_sae: Any = None
    clamp_decoder: torch.Tensor | None = None  # |F| x d
    clamp_features: list[int] = field(default_factory=list)
    clamp_all: torch.Tensor | None = None  # rows x |F|, NaN = no clamp
    clamp_at: torch.Tensor | None = None  # rows x width x |F|, NaN = no clamp (prompt pass)
    reads: list[Read] = field(default_factory=list)

    @property
    def order(self) -> tuple[int, int]:
        return point_order(self.layer, self.site)

    @property
    def every_step(self) -> bool:
        """Whether generated tokens are edited here too (an edit with positions "all")."""
        return self.replace_all is not None or self.add_all is not None or self.clamp_all is not None

    @property
    def edits_prompt(self) -> bool:
        return self.every_step or self.replace_at is not None or self.add_at is not None or self.clamp_at is not None


@dataclass
class Batch:
    prompt_ids: list[list[int]]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    plans: list[Plan]
    logit_reads: list[Read]

    @property
    def rows(self) -> int:
        return len(self.prompt_ids)

    @property
    def width(self) -> int:
        return int(self.input_ids.shape[1])

    def offsets(self) -> list[int]:
        return [self.width - len(ids) for ids in self.prompt_ids]


def tokenize(tokenizer: Any, prompts: Sequence[str | Sequence[int]], prepend_bos: bool = False) -> list[list[int]]:
    """Token ids of each prompt (the tokenizer's own special tokens; BOS first if asked).
    A prompt given as token ids is used as is."""
    texts = [p for p in prompts if isinstance(p, str)]
    encoded = iter(tokenizer(texts)["input_ids"]) if texts else iter(())
    bos = tokenizer.bos_token_id
    out = []
    for prompt in prompts:
        if isinstance(prompt, str):
            ids = list(next(encoded))
            if prepend_bos and bos is not None and ids[:1] != [bos]:
                ids = [bos, *ids]
        else:
            ids = [int(t) for t in prompt]
        if not ids:
            raise ValueError("a prompt has no tokens: give some text")
        out.append(ids)
    return out


def build_batch(tokenizer: Any, rows: Sequence[Row], reads: Sequence[Read], d_model: int,
                prepend_bos: bool = False) -> Batch:
    """Tokenise and left-pad ``rows``; group their edits by point; attach ``reads``."""
    if not rows:
        raise ValueError("no rows to run: give at least one prompt")
    prompt_ids = tokenize(tokenizer, [row.prompt for row in rows], prepend_bos)
    width = max(map(len, prompt_ids))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    pad = 0 if pad is None else pad
    input_ids = torch.full((len(rows), width), int(pad), dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for r, ids in enumerate(prompt_ids):
        input_ids[r, width - len(ids):] = torch.tensor(ids)
        attention[r, width - len(ids):] = 1
    plans: dict[tuple[int, str], Plan] = {}
    for r, row in enumerate(rows):
        for edit in row.edits:
            if edit.vector.shape[0] != d_model:
                raise ValueError(
                    f"row {r}: an edit's vector has length {edit.vector.shape[0]}, but the residual stream has "
                    f"width {d_model}")
            plan = plans.setdefault((edit.layer, edit.site), Plan(edit.layer, edit.site))
            _add_edit(plan, r, edit, prompt_ids[r], width, len(rows), d_model)
    logit_reads = []
    for read in reads:
        if read.site == "logits":
            logit_reads.append(read)
            continue
        if read.layer is None:
            raise ValueError(f"read {read.name!r} needs a layer")
        plans.setdefault((read.layer, read.site), Plan(read.layer, read.site)).reads.append(read)
    ordered = sorted(plans.values(), key=lambda plan: plan.order)
    return Batch(prompt_ids, input_ids, attention, ordered, logit_reads)


def padded_positions(positions: Any, ids: list[int], width: int, row: int) -> list[int]:
    """Padded indices of a row's prompt positions ("prompt" or indices into its own tokens)."""
    n, offset = len(ids), width - len(ids)
    if positions in ("prompt", "all"):
        return list(range(offset, width))
    out = []
    for p in positions:
        if not -n <= p < n:
            raise ValueError(f"position {p} is outside prompt {row}, which has {n} tokens (valid: {-n}..{n - 1})")
        out.append(offset + p % n)
    return out


def _add_edit(plan: Plan, r: int, edit: Edit, ids: list[int], width: int, rows: int, d: int) -> None:
    vector = edit.vector.float().cpu()  # not detached: a trace with a loss differentiates through it
    if edit.op == "clamp":
        _add_clamp(plan, r, edit, ids, width, rows, d)
        return
    if edit.positions == "all":
        if edit.op == "add":
            if plan.add_all is None:
                plan.add_all = torch.zeros(rows, d)
            plan.add_all[r] = plan.add_all[r] + vector
        else:
            if plan.replace_all is None or plan.replace_all_rows is None:
                plan.replace_all, plan.replace_all_rows = torch.zeros(rows, d), torch.zeros(rows, dtype=torch.bool)
            plan.replace_all[r] = vector
            plan.replace_all_rows[r] = True
        return
    where = padded_positions(edit.positions, ids, width, r)
    new = (torch.full((len(where),), r), torch.tensor(where), vector.expand(len(where), d))
    name = "add_at" if edit.op == "add" else "replace_at"
    old = getattr(plan, name)
    setattr(plan, name, new if old is None else tuple(torch.cat([a, b]) for a, b in zip(old, new)))


def _add_clamp(plan: Plan, r: int, edit: Edit, ids: list[int], width: int, rows: int, d: int) -> None:
    if plan.clamp_sae is None:
        plan.clamp_sae = edit.sae
    elif plan.clamp_sae is not edit.sae:
        raise ValueError(f"clamps at {edit.site}[{edit.layer}] must all use the same SAE")
    feature = int(edit.feature)  # type: ignore[arg-type]  # a clamp edit always has one (Edit checks)
    if feature not in plan.clamp_features:
        plan.clamp_features.append(feature)
        column = edit.vector.detach().float().cpu()[None]
        plan.clamp_decoder = column if plan.clamp_decoder is None else torch.cat([plan.clamp_decoder, column])
        for name in ("clamp_all", "clamp_at"):
            old = getattr(plan, name)
            if old is not None:
                setattr(plan, name, torch.cat([old, torch.full((*old.shape[:-1], 1), float("nan"))], dim=-1))
    j = plan.clamp_features.index(feature)
    k = len(plan.clamp_features)
    if edit.positions == "all":
        if plan.clamp_all is None:
            plan.clamp_all = torch.full((rows, k), float("nan"))
        plan.clamp_all[r, j] = float(edit.value)
    else:
        if plan.clamp_at is None:
            plan.clamp_at = torch.full((rows, width, k), float("nan"))
        for p in padded_positions(edit.positions, ids, width, r):
            plan.clamp_at[r, p, j] = float(edit.value)
