"""Batched generation through nnsight with a per-row residual-stream edit at every step.

One ``model.generate`` call runs every row. An optional ``ResidualEdit`` writes a
vector per row into the residual stream at one hook point: at every position of
the prompt and of every generated token (``positions="all"``, the steering
case: the KV cache makes later forward calls one token long, and they are edited
too), or only at chosen prompt positions (self-explanation style). The chosen
tokens' log-probabilities come back with the ids.

Decoding is done here, not by transformers' sampler, so that it is reproducible
and shared between rows: greedy when ``temperature == 0``; otherwise Gumbel-max
sampling, ``argmax(logits / T + g)``, where the Gumbel noise ``g`` for step t is
drawn from ``torch.Generator().manual_seed(seed)`` and is the SAME for every row.
``top_p`` keeps the smallest set of most likely tokens whose probability (after
the temperature) reaches top_p, as transformers does.

What "same seed" guarantees: the same call with the same seed gives the same
tokens (on the same device type and torch version: CPU and CUDA draw different
streams); a row's tokens do not depend on which other rows share the batch; and
every row sees the same noise at every step, so two rows whose next-token
distributions agree pick the same token: a steered row and its baseline part only
where steering changed the choice. (transformers' own sampler draws one
multinomial for the whole batch, so there each row's draw would depend on its
neighbours and two runs could not share noise; that is why sampling is done here.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Literal, Sequence

import torch

from ..core.model import model_device, model_layout

# Generation settings that make transformers' decode loop a plain argmax over the
# logits we hand it; a checkpoint's generation_config cannot add penalties or
# suppressions behind our back, and there is no EOS stop (we trim afterwards).
_PLAIN_DECODING: dict[str, Any] = dict(
    do_sample=False, num_beams=1, eos_token_id=None, temperature=None, top_p=None, top_k=None,
    min_p=None, typical_p=None, epsilon_cutoff=None, eta_cutoff=None, repetition_penalty=None,
    no_repeat_ngram_size=None, bad_words_ids=None, suppress_tokens=None, begin_suppress_tokens=None,
    min_length=None, min_new_tokens=None, forced_bos_token_id=None, forced_eos_token_id=None,
    sequence_bias=None, guidance_scale=None, renormalize_logits=None, stop_strings=None,
)


@dataclass
class ResidualEdit:
    """Write ``vectors[row]`` into the residual stream at ``site`` of block ``layer``.

    ``positions="all"``: every prompt position and every generated token.
    Otherwise one list of prompt token indices per row (indices into that row's
    own, unpadded prompt tokens), edited in the prompt's forward pass only.
    ``mode="add"`` adds the vector, ``"replace"`` overwrites the residual with it.
    """

    layer: int
    site: Literal["resid_pre", "resid_post"]
    vectors: torch.Tensor  # rows x d_model
    positions: Literal["all"] | Sequence[Sequence[int]] = "all"
    mode: Literal["add", "replace"] = "add"


@dataclass
class Generation:
    """What ``generate`` returns: per row, the prompt and the generated tokens.

    ``ids`` and ``logprobs`` hold all ``max_new_tokens`` steps (rows x steps);
    ``lengths[row]`` counts the tokens up to and including the first end-of-sequence
    token (the continuation proper); ``ended[row]`` says whether there was one.
    ``logprobs`` are the model's own log-probabilities of the chosen tokens
    (temperature 1, no top-p).
    """

    prompt_ids: list[list[int]]
    ids: torch.Tensor
    logprobs: torch.Tensor
    lengths: list[int]
    ended: list[bool]

    def continuation(self, row: int) -> tuple[list[int], list[float]]:
        """Ids and log-probabilities of ``row``'s continuation, trimmed after EOS."""
        n = self.lengths[row]
        return self.ids[row, :n].tolist(), self.logprobs[row, :n].tolist()


@dataclass
class Step:
    """One decoding step, for streaming: the token each row chose and its log-probability."""

    step: int
    ids: list[int]
    logprobs: list[float]


def eos_ids(model: Any) -> set[int]:
    """Token ids that end a continuation: the tokenizer's EOS and the checkpoint's."""
    found: set[int] = set()
    for value in (getattr(model.tokenizer, "eos_token_id", None),
                  getattr(getattr(model._module, "generation_config", None), "eos_token_id", None)):
        if isinstance(value, int):
            found.add(value)
        elif isinstance(value, (list, tuple)):
            found.update(int(v) for v in value)
    return found


def check_decoding(max_new_tokens: Any, temperature: Any, top_p: Any, seed: Any) -> None:
    """Raise a ValueError for decoding settings that cannot work."""
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
    if not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0 (0 means greedy), got {temperature!r}")
    if top_p is not None and (not isinstance(top_p, (int, float)) or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1] or None, got {top_p!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")


def generate(
    model: Any,
    prompts: Sequence[str],
    *,
    edit: ResidualEdit | None = None,
    max_new_tokens: int = 32,
    temperature: float = 0.0,
    top_p: float | None = None,
    seed: int = 0,
    remote: bool | str = False,
    on_step: Callable[[Step], None] | None = None,
    progress: bool = False,
    prepend_bos: bool = False,
) -> Generation:
    """Generate ``max_new_tokens`` tokens for every prompt in one batched nnsight call.

    ``model`` is an nnsight ``TransformersModel`` (``sw.load_model``). Locally,
    ``on_step`` is called after every step, while the model runs; with ``remote``
    the body runs elsewhere, so the steps are delivered after the run, in order.
    ``progress`` shows a ``tqdm`` bar over the steps (local runs). ``prepend_bos``
    starts every prompt with the BOS token unless the tokenizer already put it there
    (as SAELens / TransformerLens do for SAEs trained with ``prepend_bos``).
    """
    check_decoding(max_new_tokens, temperature, top_p, seed)
    if len(prompts) == 0:
        raise ValueError("no prompts: give at least one prompt")
    tokenizer = model.tokenizer
    prompt_ids = tokenize(tokenizer, prompts, prepend_bos)
    encoding = tokenizer.pad({"input_ids": prompt_ids}, padding=True, return_tensors="pt")
    input_ids, attention = encoding["input_ids"], encoding["attention_mask"]
    rows, width = input_ids.shape
    device = model_device(model)
    if device.type != "meta":
        input_ids, attention = input_ids.to(device), attention.to(device)

    # Everything the with-block reads is a local tensor, number or envoy, so that
    # the block also runs remotely (where it cannot call back into this package).
    layout = model_layout(model)
    head = layout.part(model, "unembed")
    block, pre, vectors, mask, replace = None, True, None, None, False
    if edit is not None:
        block, pre, replace = layout.blocks_of(model)[edit.layer], edit.site == "resid_pre", edit.mode == "replace"
        vectors = edit.vectors.detach().reshape(rows, 1, -1)
        if edit.positions != "all":
            mask = _position_mask(edit.positions, prompt_ids, width)
    n, temp, nucleus = max_new_tokens, float(temperature), top_p if top_p is not None and top_p < 1 else None
    # Locally the block runs in this process and may call back; remotely it may not.
    callback = None if remote or on_step is None else _relay(on_step)
    bar = None if remote or not progress else _progress_bar(n)

    with model.generate(
        {"input_ids": input_ids, "attention_mask": attention}, max_new_tokens=n,
        pad_token_id=tokenizer.pad_token_id, remote=remote, **_PLAIN_DECODING,
    ) as tracer:
        chosen = list().save()
        chosen_logprobs = list().save()
        noise = None
        for step in tracer.iter[:n]:
            if vectors is not None and (mask is None or step == 0):
                value = block.input if pre else block.output
                h = value[0] if isinstance(value, tuple) else value
                v = vectors.to(h.device, h.dtype)
                if mask is None:
                    h[:] += v
                else:
                    m = mask.to(h.device)[:, :, None]
                    h[:] = torch.where(m, v, h) if replace else h + m * v
            last = head.output[:, -1]
            logprobs = torch.log_softmax(last.float(), dim=-1)
            if temp > 0:
                if noise is None:
                    noise = torch.Generator(device=last.device).manual_seed(seed)
                scores = logprobs / temp
                if nucleus is not None:
                    probs, order = torch.softmax(scores, dim=-1).sort(dim=-1, descending=True)
                    beyond = (probs.cumsum(dim=-1) - probs) >= nucleus  # mass before it reached top_p
                    scores = scores.masked_fill(torch.zeros_like(beyond).scatter(-1, order, beyond), float("-inf"))
                uniform = torch.rand(last.shape[-1], generator=noise, device=last.device)
                token = (scores - torch.log(-torch.log(uniform.clamp_min(1e-30)))).argmax(dim=-1)
                forced = torch.full_like(last, float("-inf"))
                last[:] = forced.scatter(-1, token[:, None], 0.0)  # transformers' argmax takes our sample
            else:
                token = last.argmax(dim=-1)
            token_logprob = logprobs.gather(-1, token[:, None])[:, 0]
            chosen.append(token)
            chosen_logprobs.append(token_logprob)
            if callback is not None:
                callback(step, token, token_logprob)
            if bar is not None:
                bar.update(1)
        output = tracer.result.save()
    if bar is not None:
        bar.close()

    ids = torch.stack(list(chosen), dim=1).cpu()
    logprobs = torch.stack(list(chosen_logprobs), dim=1).cpu()
    generated = output[:, width:].cpu()
    if not torch.equal(generated, ids):
        raise RuntimeError(
            "transformers generated other tokens than the ones chosen from the logits; a logits "
            "processor of this model's generate() (see model._module.generation_config) interfered"
        )
    if remote and on_step is not None:
        for step in range(n):
            on_step(Step(step, ids[:, step].tolist(), logprobs[:, step].tolist()))
    lengths, ended = _lengths(ids, eos_ids(model))
    return Generation(prompt_ids, ids, logprobs, lengths, ended)


def tokenize(tokenizer: Any, prompts: Sequence[str], prepend_bos: bool = False) -> list[list[int]]:
    """Token ids of each prompt (the tokenizer's own special tokens; BOS first if asked)."""
    ids = [list(row) for row in tokenizer(list(prompts))["input_ids"]]
    bos = tokenizer.bos_token_id
    if prepend_bos and bos is not None:
        ids = [row if row[:1] == [bos] else [bos, *row] for row in ids]
    return ids


def _relay(on_step: Callable[[Step], None]) -> Callable[[int, torch.Tensor, torch.Tensor], None]:
    return lambda step, token, logprob: on_step(Step(step, token.tolist(), logprob.tolist()))


def _progress_bar(total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="generating", unit="token", leave=False)


def _position_mask(positions: Sequence[Sequence[int]], prompt_ids: list[list[int]], width: int) -> torch.Tensor:
    """Bool mask rows x width over the left-padded prompts from per-row token indices."""
    if len(positions) != len(prompt_ids):
        raise ValueError(f"positions has {len(positions)} rows but there are {len(prompt_ids)} prompts")
    mask = torch.zeros(len(prompt_ids), width, dtype=torch.bool)
    for row, (wanted, ids) in enumerate(zip(positions, prompt_ids)):
        for p in wanted:
            if not -len(ids) <= p < len(ids):
                raise ValueError(f"position {p} is outside prompt {row}, which has {len(ids)} tokens")
            mask[row, width - len(ids) + (p % len(ids))] = True
    return mask


def _lengths(ids: torch.Tensor, eos: set[int]) -> tuple[list[int], list[bool]]:
    """Per row: tokens up to and including the first EOS (all when none), and whether it has one."""
    ends = [next((i for i, t in enumerate(row) if t in eos), None) for row in ids.tolist()]
    return [ids.shape[1] if e is None else e + 1 for e in ends], [e is not None for e in ends]
