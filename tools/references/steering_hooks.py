"""The reference for steering and patching: plain PyTorch hooks on a raw transformers model.

No saewidgets code: a forward (pre-)hook on one block edits the residual stream, and transformers'
own greedy ``generate`` runs. ``hooked_generate`` adds (or writes) one vector per row at the input
or output of a block: at every position, the prompt and every generated token (with a KV cache each
generated token is a forward call of length 1, and it is edited too), or only on the prompt pass
(``prompt_only``: the SAELens tutorial's bug, or a patch at chosen prompt ``positions``). It is the
oracle for saewidgets' engine in tests and the baseline in benchmarks; the organism's build
measures steering with ``steered_generate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from transformers import PreTrainedModel


@dataclass
class HookedRun:
    ids: torch.Tensor  # rows x new tokens
    logprobs: torch.Tensor  # rows x new tokens: log-probabilities of the chosen tokens
    edited: list[int]  # the sequence length of every forward call the hook edited


def hooked_generate(model: PreTrainedModel, block: torch.nn.Module, input_ids: torch.Tensor,
                    attention_mask: torch.Tensor, vectors: torch.Tensor, max_new_tokens: int, *,
                    site: str = "resid_pre", mode: str = "add", prompt_only: bool = False,
                    positions: Sequence[Sequence[int]] | None = None, pad_token_id: int = 0) -> HookedRun:
    """Greedy generation with ``vectors[row]`` added to (``mode="add"``) or written over
    (``"replace"``) the residual at ``site`` of ``block``. ``positions``: per row, padded indices
    of the prompt positions to edit (on the prompt pass only); None edits every position."""
    head = model.get_output_embeddings()
    edited: list[int] = []
    logprobs: list[torch.Tensor] = []
    width = input_ids.shape[1]

    def edit(h: torch.Tensor) -> torch.Tensor:
        if (prompt_only or positions is not None) and h.shape[1] != width:
            return h
        edited.append(h.shape[1])
        v = vectors.to(h.dtype)
        if positions is None:
            return v[:, None, :].expand_as(h).clone() if mode == "replace" else h + v[:, None, :]
        h = h.clone()
        for row, wanted in enumerate(positions):
            for p in wanted:
                h[row, p] = v[row] if mode == "replace" else h[row, p] + v[row]
        return h

    if site == "resid_pre":
        def pre(module, args, kwargs):
            if args:
                return (edit(args[0]), *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": edit(kwargs["hidden_states"])}
        handle = block.register_forward_pre_hook(pre, with_kwargs=True)
    else:
        def post(module, args, out):
            return (edit(out[0]), *out[1:]) if isinstance(out, tuple) else edit(out)
        handle = block.register_forward_hook(post)
    on_head = head.register_forward_hook(lambda m, a, out: logprobs.append(out[:, -1].float().log_softmax(-1)))
    try:
        with torch.no_grad():
            out = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=max_new_tokens,
                                 do_sample=False, eos_token_id=None, pad_token_id=pad_token_id)
    finally:
        handle.remove()
        on_head.remove()
    ids = out[:, width:]
    chosen = torch.stack([lp.gather(-1, ids[:, i:i + 1])[:, 0] for i, lp in enumerate(logprobs)], dim=1)
    return HookedRun(ids, chosen, edited)


def left_pad(rows: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id rows as one left-padded batch and its attention mask."""
    width = max(map(len, rows))
    ids = torch.tensor([[pad] * (width - len(r)) + list(r) for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


def steered_generate(model: PreTrainedModel, tokenizer, prompts: list[str], direction: torch.Tensor,
                     scale: float, layer: int, max_new_tokens: int = 12,
                     prepend_bos: bool = True) -> list[str]:
    """Greedy continuations of `prompts` (one left-padded batch) with `scale * direction` added at the
    input of GPT-2 block `layer` at every position."""
    bos = [tokenizer.bos_token_id] if prepend_bos else []
    ids, mask = left_pad([bos + tokenizer.encode(p, add_special_tokens=False) for p in prompts], tokenizer.pad_token_id)
    vectors = (scale * direction).expand(len(prompts), -1)
    run = hooked_generate(model, model.transformer.h[layer], ids, mask, vectors, max_new_tokens,
                          pad_token_id=tokenizer.pad_token_id)
    return [tokenizer.decode(row, skip_special_tokens=True) for row in run.ids]
