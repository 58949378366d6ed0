"""Reference steering with plain PyTorch hooks on a raw transformers GPT-2.

Adds `scale * direction` to the residual stream entering block `layer` at every position:
the prompt and every generated token (with a KV cache each generated token is one forward call
of length 1, and it is steered too). Serves as the oracle for `saewidgets`' steering module.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from transformers import PreTrainedModel


@contextmanager
def add_to_resid_pre(model: PreTrainedModel, layer: int, vector: torch.Tensor) -> Iterator[None]:
    """While active, `hidden_states += vector` at the input of `model.transformer.h[layer]`."""

    def hook(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if args:
            return (args[0] + vector.to(args[0]), *args[1:]), kwargs
        kwargs["hidden_states"] = kwargs["hidden_states"] + vector.to(kwargs["hidden_states"])
        return args, kwargs

    handle = model.transformer.h[layer].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


@torch.no_grad()
def steered_generate(model: PreTrainedModel, tokenizer, prompts: list[str], direction: torch.Tensor,
                     scale: float, layer: int, max_new_tokens: int = 12,
                     prepend_bos: bool = True) -> list[str]:
    """Greedy continuations of `prompts` (one left-padded batch) with `scale * direction` at `layer`."""
    bos = [tokenizer.bos_token_id] if prepend_bos else []
    rows = [bos + tokenizer.encode(p, add_special_tokens=False) for p in prompts]
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    with add_to_resid_pre(model, layer, scale * direction):
        out = model.generate(ids, attention_mask=mask, do_sample=False,
                             max_new_tokens=max_new_tokens, pad_token_id=pad)
    return [tokenizer.decode(row[width:], skip_special_tokens=True) for row in out]
