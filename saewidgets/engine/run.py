"""The engine's two ways of running the model, both through nnsight: ``trace`` (one forward
pass, optionally with gradients) and ``generate`` (token by token, streamed).

Every other module runs the model through these two functions. A batch is a list of ``Row``
values (a prompt and its ``Edit`` values); ``Read`` values say what comes back from the prompt
pass. The run holds the model's lock (``saewidgets.core.locks``) and stops with a ValueError
saying where, when an edited residual or the logits become non-finite: a NaN never comes back
as a result.

Decoding is done here, not by transformers' sampler, so that it is reproducible and shared
between rows: greedy when ``temperature == 0``; otherwise Gumbel-max sampling,
``argmax(logits / T + g)``, where the Gumbel noise ``g`` of step t is drawn from
``torch.Generator().manual_seed(seed)`` and is the SAME for every row. ``top_p`` keeps the
smallest set of most likely tokens whose probability (after the temperature) reaches top_p.
What "same seed" guarantees: the same call with the same seed gives the same tokens (on the
same device type and torch version); a row's tokens do not depend on which other rows share
the batch; and every row sees the same noise at every step, so two rows whose next-token
distributions agree pick the same token (a steered row and its baseline part only where
steering changed the choice). transformers' own sampler draws one multinomial for the whole
batch, so there each row's draw would depend on its neighbours.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import nnsight
import torch

from ..core.locks import model_lock
from ..core.model import hidden_size, model_device, model_layout
from .batch import Batch, Plan, build_batch
from .decoding import Decoding, check_context
from .edits import Read, Row

# Generation settings that make transformers' decode loop a plain argmax over the logits we hand
# it: a checkpoint's generation_config cannot add penalties or suppressions behind our back, and
# there is no EOS stop (rows are trimmed afterwards).
_PLAIN_DECODING: dict[str, Any] = dict(
    do_sample=False, num_beams=1, eos_token_id=None, temperature=None, top_p=None, top_k=None,
    min_p=None, typical_p=None, epsilon_cutoff=None, eta_cutoff=None, repetition_penalty=None,
    no_repeat_ngram_size=None, bad_words_ids=None, suppress_tokens=None, begin_suppress_tokens=None,
    min_length=None, min_new_tokens=None, forced_bos_token_id=None, forced_eos_token_id=None,
    sequence_bias=None, guidance_scale=None, renormalize_logits=None, stop_strings=None,
)


class _SpuriousMaskWarning(logging.Filter):
    """Drops transformers' "pass an attention_mask" warning: the engine always passes one (GPT-2's
    generate loop asks again on later steps, where the cache makes padding irrelevant)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("attention_mask" in message and "padded" in message)


logging.getLogger("transformers.modeling_utils").addFilter(_SpuriousMaskWarning())


class NonFiniteError(ValueError):
    """A run produced inf or NaN values (an edit too large for the model's float range, or bad weights)."""


@dataclass
class Trace:
    """What ``trace`` returns: the reads by name, the batch's prompt tokens and mask, and with a
    ``loss``, its value and the gradients of ``wrt``."""

    reads: dict[str, Any]
    prompt_ids: list[list[int]]
    mask: torch.Tensor  # rows x width, 1 where a real (not padding) token is
    loss: float | None = None
    grads: list[torch.Tensor | None] = field(default_factory=list)


@dataclass
class Step:
    """One decoding step, for streaming: the token each row chose and its log-probability."""

    step: int
    ids: list[int]
    logprobs: list[float]


@dataclass
class Generation:
    """What ``generate`` returns: per row, the prompt and the generated tokens.

    ``ids`` and ``logprobs`` hold all ``max_new_tokens`` steps (rows x steps); ``lengths[row]``
    counts the tokens of the continuation proper: up to and including the first end-of-sequence
    token, or the token that completed the first stop string. ``ended[row]`` says whether it
    ended so. ``logprobs`` are the model's own log-probabilities of the chosen tokens
    (temperature 1, no top-p). ``reads``: the prompt pass's reads by name.
    """

    prompt_ids: list[list[int]]
    ids: torch.Tensor
    logprobs: torch.Tensor
    lengths: list[int]
    ended: list[bool]
    reads: dict[str, Any] = field(default_factory=dict)
    decoding: Decoding | None = None

    def continuation(self, row: int) -> tuple[list[int], list[float]]:
        """Ids and log-probabilities of ``row``'s continuation, trimmed where it ended."""
        n = self.lengths[row]
        return self.ids[row, :n].tolist(), self.logprobs[row, :n].tolist()


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


# -- inside the trace ---------------------------------------------------------------------------
def _first(value: Any) -> Any:
    return value[0] if isinstance(value, tuple) else value


def _point(model: Any, layout: Any, layer: int, site: str, n_layers: int) -> Any:
    """The residual tensor at a point, inside a trace (resid_pre[n_layers]: the final norm's input)."""
    if site == "resid_pre" and layer == n_layers:
        return _first(layout.part(model, "final_norm").input)
    block = layout.blocks_of(model)[layer]
    return _first(block.input if site == "resid_pre" else block.output)


def _apply(plan: Plan, h: torch.Tensor, first: bool) -> None:
    """Write ``plan``'s edits into ``h`` (rows x positions x d) in place. ``first``: the prompt pass."""
    if plan.replace_all is not None and plan.replace_all_rows is not None:
        rows = plan.replace_all_rows.to(h.device)[:, None, None]
        h[:] = torch.where(rows, plan.replace_all.to(h.device, h.dtype)[:, None, :], h)
    if first and plan.replace_at is not None:
        r, p, v = plan.replace_at
        h[r.to(h.device), p.to(h.device)] = v.to(h.device, h.dtype)
    if plan.add_all is not None:
        h[:] += plan.add_all.to(h.device, h.dtype)[:, None, :]
    if first and plan.add_at is not None:
        r, p, v = plan.add_at
        h.index_put_((r.to(h.device), p.to(h.device)), v.to(h.device, h.dtype), accumulate=True)
    targets = None
    if plan.clamp_all is not None:
        targets = plan.clamp_all.to(h.device)[:, None, :].expand(h.shape[0], h.shape[1], -1)
    if first and plan.clamp_at is not None:
        at = plan.clamp_at.to(h.device)
        targets = at if targets is None else torch.where(torch.isnan(at), targets, at)
    if targets is not None and plan.clamp_decoder is not None:
        acts = plan.clamp_sae.encode(h)[..., plan.clamp_features].to(h.dtype)
        coeff = torch.where(torch.isnan(targets), torch.zeros_like(acts), targets.to(h.dtype) - acts)
        h[:] += coeff @ plan.clamp_decoder.to(h.device, h.dtype)


def _read(read: Read, h: torch.Tensor, mask: torch.Tensor, offsets: torch.Tensor) -> Any:
    if read.positions == "last":
        value = h[:, -1]
    elif read.positions == "all":
        value = h
    else:
        index = offsets.to(h.device)[:, None] + torch.tensor(read.positions, device=h.device)[None, :]
        value = h[torch.arange(h.shape[0], device=h.device)[:, None], index]
    return read.fn(value, mask.to(h.device)) if read.fn is not None else value


def _finite_rows(h: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(h.detach()).reshape(h.shape[0], -1).all(dim=1)


def _prompt_pass(model: Any, layout: Any, n_layers: int, batch: Batch, mask: torch.Tensor, offsets: torch.Tensor,
                 reads: dict, checks: list, first: bool) -> None:
    """Visit every point in model order: read (before or after the edits) and edit."""
    for plan in batch.plans:
        if not first and not plan.every_step:
            continue
        h = _point(model, layout, plan.layer, plan.site, n_layers)
        if first:
            for read in plan.reads:
                if not read.after_edits:
                    reads[read.name] = _read(read, h.clone(), mask, offsets)
        if plan.edits_prompt:
            _apply(plan, h, first)
            checks.append((plan.layer, plan.site, _finite_rows(h)))
        if first:
            for read in plan.reads:
                if read.after_edits:
                    reads[read.name] = _read(read, h, mask, offsets)


def _raise_non_finite(checks: list, logit_checks: list | None = None) -> None:
    for layer, site, ok in checks:
        bad = (~ok).nonzero().flatten().tolist()
        if bad:
            raise NonFiniteError(
                f"the residual stream at {site}[{layer}] became inf/NaN after the edit in row(s) {bad[:8]}: the "
                "vector written there is too large for the model's number range; use a smaller scale (or check "
                "the direction for huge values)")
    for step, ok in logit_checks or []:
        bad = (~ok).nonzero().flatten().tolist()
        if bad:
            raise NonFiniteError(
                f"the model's logits became inf/NaN at generated step {step} in row(s) {bad[:8]}: an edit pushed "
                "the residual stream out of the model's number range; use a smaller scale")


def _check_reads(values: dict) -> None:
    for name, value in values.items():
        items = value if isinstance(value, (tuple, list)) else (value,)
        for item in items:
            if isinstance(item, torch.Tensor) and item.is_floating_point() and not torch.isfinite(item.detach()).all():
                raise NonFiniteError(f"read {name!r} came back with inf/NaN values: the model or an edit overflowed")


def _inputs(model: Any, batch: Batch, positions: bool = False) -> dict[str, torch.Tensor]:
    """The batch as model inputs; with ``positions``, explicit position ids that start at 0 on each
    row's first real token (older transformers count left padding as positions in a plain forward)."""
    device = model_device(model)
    inputs = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
    if positions and bool((batch.attention_mask == 0).any()) and _takes_position_ids(model):
        inputs["position_ids"] = (batch.attention_mask.cumsum(-1) - 1).clamp_min(0)
    if device.type != "meta":
        inputs = {name: value.to(device) for name, value in inputs.items()}
    return inputs


def _takes_position_ids(model: Any) -> bool:
    import inspect

    try:
        return "position_ids" in inspect.signature(model._module.forward).parameters
    except (TypeError, ValueError):
        return False


def _prepare(model: Any, rows: Sequence[Row], reads: Sequence[Read], prepend_bos: bool, max_new_tokens: int = 0
             ) -> tuple[Any, int, Batch]:
    layout = model_layout(model)
    n_layers = len(layout.blocks_of(model._module))
    for read in reads:
        if read.site != "logits" and read.layer is not None and not 0 <= read.layer <= n_layers - (read.site == "resid_post"):
            raise ValueError(f"read {read.name!r}: layer {read.layer} does not exist (this model has {n_layers} blocks)")
    for r, row in enumerate(rows):
        for edit in row.edits:
            if edit.layer >= n_layers:
                raise ValueError(f"row {r}: an edit at layer {edit.layer}, but this model has {n_layers} blocks "
                                 f"(valid 0..{n_layers - 1})")
    batch = build_batch(model.tokenizer, rows, reads, hidden_size(model._module, layout), prepend_bos)
    check_context(model, [len(ids) for ids in batch.prompt_ids], max_new_tokens)
    for plan in batch.plans:
        for tensor in (plan.add_all, plan.replace_all, plan.clamp_decoder,
                       *(plan.add_at or ()), *(plan.replace_at or ())):
            if tensor is not None and tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise NonFiniteError(f"an edit at {plan.site}[{plan.layer}] holds inf/NaN values: give finite vectors")
    return layout, n_layers, batch


# -- trace --------------------------------------------------------------------------------------
def trace(
    model: Any,
    rows: Sequence[Row],
    reads: Sequence[Read] = (),
    *,
    prepend_bos: bool = False,
    loss: Callable[[dict[str, Any]], torch.Tensor] | None = None,
    wrt: Sequence[torch.Tensor] = (),
    remote: Any = False,
    stop: bool = False,
) -> Trace:
    """One forward pass over ``rows`` with their edits; returns the ``reads``.

    ``stop``: end the forward pass at the last point read or edited (nnsight's ``tracer.stop()``):
    the later blocks and the unembedding do not run. Only for residual-stream reads, no loss.

    With ``loss`` (a function of the reads dict returning a scalar), the pass keeps gradients,
    calls ``loss(reads).backward()`` inside the trace (so it also runs remotely) and returns the
    loss value and the gradients of the tensors in ``wrt`` (e.g. a vector an edit adds); the
    reads then come back detached. Without it nothing keeps gradients. Only ``wrt`` is
    differentiated: the model's own weights are not (their ``requires_grad`` is off during the
    pass and restored after; locally, none of them gets a ``.grad``).
    """
    layout, n_layers, batch = _prepare(model, rows, reads, prepend_bos)
    if stop and (batch.logit_reads or loss is not None):
        raise ValueError("trace(stop=True) ends the pass at the last residual point: it cannot read the logits "
                         "or take a loss; drop stop=True")
    inputs = _inputs(model, batch, positions=True)
    mask, offsets = batch.attention_mask, torch.tensor(batch.offsets())
    head = layout.part(model, "unembed")
    wrt = list(wrt)
    grad = loss is not None
    for tensor in wrt:
        if not tensor.requires_grad:
            raise ValueError("every tensor in wrt= must require gradients (tensor.requires_grad_())")
        tensor.grad = None
    with model_lock(model), _frozen_weights(model, wrt, grad), torch.set_grad_enabled(grad), \
            model.trace(inputs, remote=remote) as tracer:
        values = nnsight.save({})
        checks = nnsight.save([])
        result = nnsight.save({"grads": []})
        _prompt_pass(model, layout, n_layers, batch, mask, offsets, values, checks, True)
        if stop:
            tracer.stop()
        if batch.logit_reads:
            logits = head.output
            for read in batch.logit_reads:
                values[read.name] = _read(read, logits, mask, offsets)
        if loss is not None:
            total = loss(values)
            with total.backward():  # nnsight's backward pass, inside the trace (remote-ready)
                pass
            result["loss"] = total.detach()
            for tensor in wrt:
                result["grads"].append(None if tensor.grad is None else tensor.grad.detach().clone())
    _raise_non_finite(list(checks))
    _check_reads(dict(values))
    reads_out = {k: (v.detach() if isinstance(v, torch.Tensor) and grad else v) for k, v in dict(values).items()}
    objective = result.get("loss")
    if objective is not None and not torch.isfinite(objective):
        raise NonFiniteError("the loss is inf/NaN: an edit pushed the model out of its number range")
    return Trace(reads_out, batch.prompt_ids, mask, None if objective is None else float(objective),
                 list(result["grads"]))


@contextmanager
def _frozen_weights(model: Any, wrt: Sequence[torch.Tensor], active: bool) -> Iterator[None]:
    """While ``active``: the model's parameters (those not in ``wrt``) do not require gradients,
    so a backward pass computes only what ``wrt`` needs and leaves no ``.grad`` on the weights."""
    if not active:
        yield
        return
    wanted = {id(tensor) for tensor in wrt}
    frozen = [p for p in model._module.parameters() if p.requires_grad and id(p) not in wanted]
    for parameter in frozen:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in frozen:
            parameter.requires_grad_(True)


# -- generate -----------------------------------------------------------------------------------
def generate(
    model: Any,
    rows: Sequence[Row],
    decoding: Decoding,
    reads: Sequence[Read] = (),
    *,
    on_step: Callable[[Step], None] | None = None,
    progress: bool = False,
    remote: Any = False,
) -> Generation:
    """Generate ``decoding.max_new_tokens`` tokens for every row in ONE batched nnsight call.

    Edits with positions "all" apply to the prompt and to every generated token; the others to
    the prompt pass only. ``reads`` are taken on the prompt pass. Locally, ``on_step`` is called
    after every step while the model runs; with ``remote`` the body runs elsewhere, so the steps
    are delivered after the run, in order. ``progress`` shows a ``tqdm`` bar over the steps.
    ``decoding.prepend_bos`` must be resolved (True/False) by the caller.
    """
    if not isinstance(decoding, Decoding):
        raise ValueError(f"decoding must be an sw.Decoding, got {type(decoding).__name__}")
    n = decoding.max_new_tokens
    layout, n_layers, batch = _prepare(model, rows, reads, bool(decoding.prepend_bos), n)
    inputs = _inputs(model, batch)
    width = batch.width
    mask, offsets = batch.attention_mask, torch.tensor(batch.offsets())
    head = layout.part(model, "unembed")
    temp, seed = float(decoding.temperature), decoding.seed
    nucleus = decoding.top_p if decoding.top_p is not None and decoding.top_p < 1 else None
    callback = None if remote or on_step is None else on_step
    bar = None if remote or not progress else _progress_bar(n)
    pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else model.tokenizer.eos_token_id

    with model_lock(model), torch.no_grad(), model.generate(
        inputs, max_new_tokens=n, pad_token_id=pad, remote=remote, **_PLAIN_DECODING,
    ) as tracer:
        chosen = nnsight.save([])
        chosen_logprobs = nnsight.save([])
        values = nnsight.save({})
        checks = nnsight.save([])
        logit_checks = nnsight.save([])
        noise = None
        for step in tracer.iter[:n]:
            _prompt_pass(model, layout, n_layers, batch, mask, offsets, values, checks, step == 0)
            logits = head.output
            if step == 0:
                for read in batch.logit_reads:
                    values[read.name] = _read(read, logits, mask, offsets)
            last = logits[:, -1]
            logprobs = torch.log_softmax(last.float(), dim=-1)
            logit_checks.append((step, _finite_rows(logprobs)))
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
                callback(Step(step, token.tolist(), token_logprob.tolist()))
            if bar is not None:
                bar.update(1)
        output = tracer.result.save()
    if bar is not None:
        bar.close()
    _raise_non_finite(list(checks), list(logit_checks))
    _check_reads(dict(values))

    ids = torch.stack(list(chosen), dim=1).cpu()
    logprobs = torch.stack(list(chosen_logprobs), dim=1).cpu()
    generated = output[:, width:].cpu()
    if not torch.equal(generated, ids):
        raise RuntimeError(
            "transformers generated other tokens than the ones chosen from the logits; a logits processor of "
            "this model's generate() (see model._module.generation_config) interfered")
    if remote and on_step is not None:
        for step in range(n):
            on_step(Step(step, ids[:, step].tolist(), logprobs[:, step].tolist()))
    lengths, ended = end_of_rows(model.tokenizer, ids, eos_ids(model), decoding.stop)
    return Generation(batch.prompt_ids, ids, logprobs, lengths, ended, dict(values), decoding)


def end_of_rows(tokenizer: Any, ids: torch.Tensor, eos: set[int], stop: Sequence[str] = ()) -> tuple[list[int], list[bool]]:
    """Per row: the continuation's length (through its first EOS, or the token that completes the
    first stop string; all tokens when neither comes) and whether it ended so."""
    lengths, ended = [], []
    for row in ids.tolist():
        end = next((i for i, t in enumerate(row) if t in eos), None)
        if stop:
            stop_at = stop_index(tokenizer, row if end is None else row[:end], stop)
            if stop_at is not None:
                end = stop_at
        lengths.append(len(row) if end is None else end + 1)
        ended.append(end is not None)
    return lengths, ended


def stop_index(tokenizer: Any, ids: Sequence[int], stop: Sequence[str]) -> int | None:
    """Index of the token whose text completes the first occurrence of a stop string, or None."""
    text = tokenizer.decode(list(ids), clean_up_tokenization_spaces=False)
    if not any(s in text for s in stop):
        return None
    for i in range(len(ids)):
        prefix = tokenizer.decode(list(ids[: i + 1]), clean_up_tokenization_spaces=False)
        if any(s in prefix for s in stop):
            return i
    return None


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """``text`` up to (not including) the first occurrence of any stop string."""
    cuts = [text.index(s) for s in stop if s in text]
    return text[: min(cuts)] if cuts else text


def _progress_bar(total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="generating", unit="token", leave=False)
