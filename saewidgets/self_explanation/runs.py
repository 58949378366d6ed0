"""The nnsight runs behind self-explanation: one prompt, many rows, each row its own patch.

Every row of a batch is the same prompt, so there is no padding. Row ``i`` gets its
residual stream entering block ``layer`` REPLACED by ``vectors[i]`` at every placeholder
position. The replacement is written once, outside any ``tracer.iter`` loop, so it applies
to the first forward call of generation only: the prompt pass, the only pass that contains
the placeholder positions (later steps run one new token against the KV cache, which
already holds the patched prompt).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..core.layout import ModelLayout


@dataclass
class PatchedRun:
    """What one batched, patched generation returns (CPU tensors)."""

    new_tokens: torch.Tensor  # rows x generated tokens
    probe: torch.Tensor  # rows x d_model: residual at the probe layer, last prompt position
    logits: torch.Tensor  # rows x vocab: next-token logits at the last prompt position


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, tuple) else value


def probe_envoy(model: Any, layout: ModelLayout, probe_layer: int) -> Any:
    """The module whose input is the probe residual: block ``probe_layer``, or the final
    norm when ``probe_layer`` equals the number of blocks (the residual after the last block)."""
    blocks = layout.blocks_of(model)
    return blocks[probe_layer] if probe_layer < len(blocks) else layout.part(model, "final_norm")


def measure_prompt(model: Any, layout: ModelLayout, input_ids: torch.Tensor, layer: int,
                   remote: Any = False) -> tuple[float, torch.Tensor]:
    """Median residual norm entering block ``layer`` over the prompt, and the mean token embedding."""
    blocks = layout.blocks_of(model)
    embed = layout.part(model, "embed")
    with torch.no_grad(), model.trace(input_ids[None], remote=remote):
        norms = _first(blocks[layer].input)[0].norm(dim=-1).save()
        mean_embedding = embed.weight.mean(0).save()
    return float(norms.detach().float().median()), mean_embedding.detach().float().cpu()


def patched_generate(
    model: Any,
    layout: ModelLayout,
    input_ids: torch.Tensor,
    positions: tuple[int, ...],
    vectors: torch.Tensor,
    layer: int,
    probe_layer: int,
    max_new_tokens: int,
    remote: Any = False,
    **generate_kwargs: Any,
) -> PatchedRun:
    """Generate from ``len(vectors)`` copies of the prompt in ONE batched nnsight call.

    ``vectors`` (rows x d_model) replace the residual entering block ``layer`` at every
    placeholder position of their row, on the prompt pass only. Greedy decoding unless
    ``generate_kwargs`` say otherwise.
    """
    rows = vectors.shape[0]
    batch = input_ids[None].repeat(rows, 1)
    inputs = {"input_ids": batch, "attention_mask": torch.ones_like(batch)}
    pad = getattr(model.tokenizer, "pad_token_id", None)
    if pad is None:
        pad = getattr(model.tokenizer, "eos_token_id", None)
    kwargs = {"do_sample": False, "pad_token_id": pad, **generate_kwargs}
    # Locals only inside the with-block: it must pickle for remote execution.
    inject = layout.blocks_of(model)[layer]
    probe = probe_envoy(model, layout, probe_layer)
    head = layout.part(model, "unembed")
    index = torch.tensor(positions, dtype=torch.long)
    patch = vectors[:, None, :].expand(rows, len(positions), vectors.shape[1])
    with torch.no_grad(), model.generate(inputs, max_new_tokens=max_new_tokens, remote=remote, **kwargs) as tracer:
        hidden = _first(inject.input)
        hidden[:, index.to(hidden.device), :] = patch.to(hidden.device, hidden.dtype)
        probe_resid = _first(probe.input)[:, -1, :].save()
        logits = head.output[:, -1, :].save()
        result = tracer.result.save()
    sequences = result if isinstance(result, torch.Tensor) else result.sequences
    return PatchedRun(
        new_tokens=sequences[:, input_ids.shape[0]:].cpu(),
        probe=probe_resid.detach().float().cpu(),
        logits=logits.detach().float().cpu(),
    )
