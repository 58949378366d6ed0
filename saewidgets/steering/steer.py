"""Steering with SAE features and directions: baseline and steered continuations from one call.

``steer`` adds ``sum(scale * W_dec[f])`` (plus any raw directions) to the residual stream at the
SAE's hook point, at every position of the prompt and of every generated token, through the
engine (``saewidgets.engine``). Each prompt runs twice in the same batch, once without the vector
(baseline) and once with it (steered), with the same decoding noise; a caller that already holds
the baselines (``baseline=``) runs the steered rows alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

from ..core.binding import Binding, bind
from ..core.direction import Direction
from ..engine import Decoding, Edit, Generation, Row, Step, eos_ids, generate
from ..engine.decoding import LIMITS
from ..engine.run import cut_at_stop

Prompts = str | Sequence[str]


@dataclass
class SteeringStep:
    """One generated step, as passed to ``on_step``: per prompt, the new token of each variant.

    An entry is ``None`` once that row's continuation has ended (at an earlier step), so a
    stream shows exactly the tokens of the final result. With ``baseline=`` given, the baseline
    entries are ``None`` (those rows do not run).
    """

    step: int
    baseline_ids: list[int | None]
    steered_ids: list[int | None]
    baseline_logprobs: list[float | None]
    steered_logprobs: list[float | None]


@dataclass
class Continuation:
    """One generated continuation: its text, token ids and their log-probabilities.

    It stops after the first end-of-sequence token (kept in ``ids``, ``ended`` True, left out of
    ``text``) or at the first stop string (the token completing it is kept in ``ids``; ``text``
    is cut before the stop string).
    """

    text: str
    ids: list[int]
    logprobs: list[float]
    ended: bool


@dataclass
class SteeringResult:
    """Baseline and steered continuations of each prompt.

    ``.baseline``/``.steered`` (texts), ``.baseline_ids``/``.steered_ids`` and
    ``.baseline_logprobs``/``.steered_logprobs`` hold a plain value for a single (str) prompt and
    a list with one entry per prompt otherwise; the ``Continuation`` objects are in
    ``.baseline_runs``/``.steered_runs``. Log-probs are the model's own (temperature 1)
    log-probabilities of the chosen tokens, each under its own run. ``direction`` is what was
    added (an ``sw.Direction``), ``decoding`` how tokens were chosen.
    """

    prompts: list[str]
    baseline_runs: list[Continuation]
    steered_runs: list[Continuation]
    features: dict[int, float]
    directions: list[tuple[torch.Tensor, float]]
    vector: torch.Tensor  # the total vector added at every position (d_model)
    layer: int
    site: str
    settings: dict[str, Any]  # max_new_tokens, temperature, top_p, seed, prepend_bos, stop
    prompt_ids: list[list[int]] = field(default_factory=list)  # each prompt's tokens as the model saw them
    single: bool = False  # the prompt was one string
    token_strings: dict[int, str] = field(default_factory=dict, repr=False)
    direction: Direction | None = None
    decoding: Decoding | None = None

    def _per_prompt(self, runs: list[Continuation], name: str) -> Any:
        values = [getattr(run, name) for run in runs]
        return values[0] if self.single else values

    @property
    def baseline(self) -> str | list[str]:
        return self._per_prompt(self.baseline_runs, "text")

    @property
    def steered(self) -> str | list[str]:
        return self._per_prompt(self.steered_runs, "text")

    @property
    def baseline_ids(self) -> list[int] | list[list[int]]:
        return self._per_prompt(self.baseline_runs, "ids")

    @property
    def steered_ids(self) -> list[int] | list[list[int]]:
        return self._per_prompt(self.steered_runs, "ids")

    @property
    def baseline_logprobs(self) -> list[float] | list[list[float]]:
        return self._per_prompt(self.baseline_runs, "logprobs")

    @property
    def steered_logprobs(self) -> list[float] | list[list[float]]:
        return self._per_prompt(self.steered_runs, "logprobs")

    def to_frame(self) -> Any:
        """One row per (prompt, variant, position) of the continuations.

        Columns: prompt_index, prompt, variant ("baseline" | "steered"), position (0 = first
        generated token), token_id, token (its decoded text), logprob.
        """
        import pandas as pd

        records = [
            dict(prompt_index=p, prompt=self.prompts[p], variant=variant, position=i, token_id=t,
                 token=self.token_strings[t], logprob=lp)
            for variant, runs in (("baseline", self.baseline_runs), ("steered", self.steered_runs))
            for p, run in enumerate(runs)
            for i, (t, lp) in enumerate(zip(run.ids, run.logprobs))
        ]
        columns = ["prompt_index", "prompt", "variant", "position", "token_id", "token", "logprob"]
        return pd.DataFrame.from_records(records, columns=columns)

    def __repr__(self) -> str:
        pairs = "; ".join(f"{b.text!r} -> {s.text!r}" for b, s in zip(self.baseline_runs, self.steered_runs))
        return f"SteeringResult(features={self.features}, {self.site}[{self.layer}]: {pairs})"


def steer(
    model: Any,
    sae: Any = None,
    prompt: Prompts | None = None,
    features: Mapping[int, float] | Direction | None = None,
    *,
    directions: Any = None,
    max_new_tokens: int = 32,
    temperature: float = 0.0,
    top_p: float | None = None,
    seed: int = 0,
    prepend_bos: bool | None = None,
    stop: str | Sequence[str] | None = None,
    decoding: Decoding | dict | None = None,
    baseline: "SteeringResult | Sequence[Continuation] | None" = None,
    remote: bool | str = False,
    on_step: Callable[[SteeringStep], None] | None = None,
    hook: Any = None,
    progress: bool = True,
) -> SteeringResult:
    """Generate from ``prompt`` with and without the steering vector, side by side.

    The vector is ``sum(scale * W_dec[f] for f, scale in features.items())`` plus ``directions``
    (an ``sw.Direction``, a d_model vector, a k x d_model tensor of vectors, or a list of those or
    of ``(direction, scale)`` pairs), added at the SAE's hook point (or ``hook``) at every prompt
    position and every generated token. ``features`` may also be a Direction. ``model, sae`` may
    be a ``Binding`` (``steer(binding, prompt=...)``). Several prompts run in the same batch.

    Decoding (``decoding=sw.Decoding(...)``, or its fields as keywords, which win): greedy when
    ``temperature == 0``; otherwise it samples (optionally within ``top_p``) with noise drawn
    from ``seed``: the same seed gives the same result, and every row, baseline and steered,
    sees the same noise at each step, so the two variants differ only where steering changed the
    choice. ``prepend_bos`` (default: the SAE's ``prepend_bos`` setting, else False) starts each
    prompt with the BOS token, as the SAE saw in training; ``stop`` strings end a continuation.
    A total vector of zero reproduces the baseline exactly (its steered rows are the baselines).

    ``baseline``: the result of an earlier call with the same prompts and decoding (or its
    ``baseline_runs``): its baselines are reused and only the steered rows run.
    ``on_step`` receives a ``SteeringStep`` after every step while a local model runs; with
    ``remote`` the steps arrive after the run. ``progress`` shows a bar over the tokens.
    """
    if isinstance(model, Binding) and prompt is None and not isinstance(sae, Binding):
        sae, prompt = None, sae  # steer(binding, "prompt", ...)
    binding = _binding(model, sae, hook)
    prompts, single = _prompts(prompt)
    settings = Decoding.of(decoding, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                           seed=seed, prepend_bos=prepend_bos, stop=stop) if decoding is None else \
        Decoding.of(decoding, **_given(max_new_tokens=(max_new_tokens, 32), temperature=(temperature, 0.0),
                                       top_p=(top_p, None), seed=(seed, 0), prepend_bos=(prepend_bos, None),
                                       stop=(stop, None)))
    settings = settings.with_bos(bool(binding.sae.metadata.get("prepend_bos", False)))
    if on_step is not None and not callable(on_step):
        raise ValueError(f"on_step must be a function taking a SteeringStep, got {type(on_step).__name__}")
    direction = steering_direction(binding, features, directions)
    vector = direction.vector if direction.d_model is not None else torch.zeros(binding.d_model)
    if not torch.isfinite(vector).all():
        raise ValueError("the steering vector overflows (inf): use smaller scales")
    reused = _reused_baseline(baseline, prompts, settings)

    n = len(prompts)
    steering = bool(vector.any())
    rows = [] if reused is not None else [Row(p) for p in prompts]
    if steering:
        edit = Edit(binding.layer, vector, site=binding.site)  # type: ignore[arg-type]  # a checked HookPoint site
        rows += [Row(p, (edit,)) for p in prompts]
    first_steered = 0 if reused is not None else (n if steering else 0)
    runs: list[Continuation] = []
    prompt_ids: list[list[int]] = []
    if rows:
        relay = None if on_step is None else _streamer(
            on_step, n, reused is not None, first_steered, steering, eos_ids(binding.model), binding.tokenizer, settings.stop)
        generation = generate(binding.model, rows, settings, on_step=relay, progress=progress, remote=remote)
        runs = [_continuation(generation, row, binding.tokenizer, settings.stop) for row in range(len(rows))]
        prompt_ids = generation.prompt_ids[:n]
    baseline_runs = list(reused) if reused is not None else runs[:n]
    steered_runs = runs[first_steered:first_steered + n] if steering else baseline_runs
    if not prompt_ids:
        prompt_ids = list(getattr(baseline, "prompt_ids", []) or [])
    seen = {t for run in baseline_runs + steered_runs for t in run.ids}
    scales = direction.features
    return SteeringResult(
        prompts=prompts, baseline_runs=baseline_runs, steered_runs=steered_runs, features=scales,
        directions=direction.vectors, vector=vector, layer=binding.layer, site=binding.site,
        settings={k: v for k, v in settings.to_dict().items()}, prompt_ids=prompt_ids, single=single,
        token_strings=_token_strings(binding.tokenizer, seen), direction=direction, decoding=settings,
    )


def steer_variants(
    binding: Binding,
    prompt: str,
    directions: Sequence[Direction],
    decoding: Decoding,
    *,
    baseline: Continuation | None = None,
    batch_size: int = 64,
    remote: bool | str = False,
    progress: bool = False,
) -> tuple[Continuation, list[Continuation]]:
    """One prompt, many steering directions (e.g. a grid of scales): the baseline continuation
    and one steered continuation per direction, in batches of ``batch_size`` rows.

    The same engine, edit and decoding as ``steer`` (``decoding.prepend_bos`` resolved by the
    caller): each continuation is the one ``steer`` gives for that direction. A zero direction's
    continuation is the baseline. ``baseline`` reuses an earlier baseline.
    """
    from tqdm.auto import tqdm

    prompts, _ = _prompts(prompt)
    if decoding.prepend_bos is None:
        raise ValueError("steer_variants needs decoding.prepend_bos resolved (True or False)")
    vectors = [d.check_width(binding.d_model).vector if d.d_model is not None else torch.zeros(binding.d_model)
               for d in directions]
    for i, vector in enumerate(vectors):
        if not torch.isfinite(vector).all():
            raise ValueError(f"steering direction {i} overflows (inf): use smaller scales")
    wanted = [i for i, v in enumerate(vectors) if bool(v.any())]
    rows = ([] if baseline is not None else [Row(prompts[0])]) + [
        Row(prompts[0], (Edit(binding.layer, vectors[i], site=binding.site),))  # type: ignore[arg-type]
        for i in wanted]
    out: list[Continuation] = []
    with tqdm(total=len(rows), desc="steering", unit="row", disable=not progress) as bar:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            generation = generate(binding.model, chunk, decoding, remote=remote)
            out += [_continuation(generation, r, binding.tokenizer, decoding.stop) for r in range(len(chunk))]
            bar.update(len(chunk))
    if baseline is None:
        baseline, out = out[0], out[1:]
    steered = [baseline] * len(vectors)
    for i, run in zip(wanted, out):
        steered[i] = run
    return baseline, steered


def _given(**pairs: tuple[Any, Any]) -> dict[str, Any]:
    """Keyword values that differ from their defaults (they override ``decoding=``)."""
    return {name: value for name, (value, default) in pairs.items() if value is not default and value != default}


# -- validation and assembly -----------------------------------------------------------

def _binding(model: Any, sae: Any, hook: Any) -> Binding:
    if isinstance(model, Binding) and sae is None:
        binding = model
    elif isinstance(sae, Binding) and model is None:
        binding = sae
    elif sae is None:
        raise ValueError("steer needs an SAE: steer(model, sae, prompt, ...) or steer(sw.bind(model, sae), prompt=...)")
    else:
        binding = bind(model, sae)
    if hook is not None:
        binding = bind(binding.model, binding.sae, hook)
    return binding


def _prompts(prompt: Any) -> tuple[list[str], bool]:
    single = isinstance(prompt, str)
    prompts = [prompt] if single else list(prompt) if isinstance(prompt, (list, tuple)) else None
    if prompts is None:
        raise ValueError(f"prompt must be a string or a list of strings, got {type(prompt).__name__}")
    if not prompts:
        raise ValueError("the prompt list is empty: give at least one prompt")
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise ValueError(f"prompt {i} is a {type(p).__name__}, not a string")
        if not p.strip():
            raise ValueError(f"prompt {i} is empty: give some text to continue")
    return prompts, single


def check_scale(value: Any, what: str) -> float:
    """A steering scale: a finite number within the shared limit (``limits.json``)."""
    try:
        scale = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"the scale of {what} must be a number, got {value!r}") from None
    limit = LIMITS["scale"]["max_abs"]
    if not math.isfinite(scale):
        raise ValueError(f"the scale of {what} is {scale}: give a finite number")
    if abs(scale) > limit:
        raise ValueError(f"the scale of {what} is {scale:g}, beyond ±{limit:g}: give a smaller scale")
    return scale


def steering_direction(binding: Binding, features: Any, directions: Any) -> Direction:
    """The total steering direction: ``features`` ({feature: scale} or a Direction) plus ``directions``."""
    total = Direction(name="steering")
    if isinstance(features, Direction):
        total = total + features.check_width(binding.d_model, f"the residual stream at {binding.site}[{binding.layer}]")
    elif features is not None:
        if not isinstance(features, Mapping):
            raise ValueError(
                f"features must be a dict {{feature: scale}}, for example {{12: 40.0}}, or an sw.Direction; "
                f"got {type(features).__name__}")
        for f, s in features.items():
            index = binding.check_feature(f)
            total = total + Direction.feature(binding.sae, index, check_scale(s, f"feature {index}"))
    for i, (direction, scale) in enumerate(_direction_items(directions)):
        part = Direction.of(direction, name=f"direction {i}") if not isinstance(direction, Direction) else direction
        part.check_width(binding.d_model, f"the residual stream at {binding.site}[{binding.layer}]")
        total = total + part.scaled(check_scale(scale, f"direction {i}"))
    return total


def _direction_items(directions: Any) -> list[tuple[Any, Any]]:
    if directions is None:
        return []
    if isinstance(directions, Direction):
        return [(directions, 1.0)]
    if isinstance(directions, (list, tuple)):
        items = []
        for i, d in enumerate(directions):
            if isinstance(d, tuple):
                if len(d) != 2:
                    raise ValueError(f"direction {i} must be a vector, an sw.Direction or a (direction, scale) pair")
                items.append(d)
            else:
                items.append((d, 1.0))
        return items
    try:
        matrix = torch.as_tensor(directions)
    except (TypeError, ValueError, RuntimeError):
        matrix = None
    if matrix is None or matrix.ndim not in (1, 2):
        raise ValueError(
            "directions must be an sw.Direction, a vector of length d_model, a k x d_model tensor, or a list of "
            f"those or of (direction, scale) pairs; got {type(directions).__name__}")
    return [(row, 1.0) for row in (matrix[None] if matrix.ndim == 1 else matrix)]


def _reused_baseline(baseline: Any, prompts: list[str], decoding: Decoding) -> list[Continuation] | None:
    if baseline is None:
        return None
    if isinstance(baseline, SteeringResult):
        if baseline.prompts != prompts:
            raise ValueError("baseline= comes from other prompts: pass the result of a call with the same prompts")
        if baseline.decoding is not None and baseline.decoding != decoding:
            raise ValueError(f"baseline= was generated with other decoding settings ({baseline.decoding}); "
                             f"this call uses {decoding}")
        return list(baseline.baseline_runs)
    runs = list(baseline)
    if len(runs) != len(prompts) or not all(isinstance(r, Continuation) for r in runs):
        raise ValueError(f"baseline= must be a SteeringResult or {len(prompts)} Continuation values (one per prompt)")
    return runs


def _continuation(generation: Generation, row: int, tokenizer: Any, stop: Sequence[str]) -> Continuation:
    ids, logprobs = generation.continuation(row)
    ended = generation.ended[row]
    eos = ended and bool(ids) and ids[-1] in _eos_of(tokenizer, generation)
    text = tokenizer.decode(ids[:-1] if eos else ids, clean_up_tokenization_spaces=False)
    return Continuation(cut_at_stop(text, stop) if stop else text, ids, logprobs, ended)


def _eos_of(tokenizer: Any, generation: Generation) -> set[int]:
    eos = getattr(tokenizer, "eos_token_id", None)
    return {eos} if isinstance(eos, int) else set()


def _token_strings(tokenizer: Any, ids: set[int]) -> dict[int, str]:
    return {t: tokenizer.decode([t], clean_up_tokenization_spaces=False) for t in sorted(ids)}


def _streamer(on_step: Callable[[SteeringStep], None], n: int, baseline_reused: bool, first_steered: int,
              steering: bool, eos: set[int], tokenizer: Any, stop: Sequence[str]) -> Callable[[Step], None]:
    """Turn row-wise engine ``Step``s into ``SteeringStep``s, hiding tokens after each row's end."""
    rows = (0 if baseline_reused else n) + (n if steering else 0)
    ended = [False] * rows
    seen: list[list[int]] = [[] for _ in range(rows)]

    def relay(step: Step) -> None:
        ids: list[int | None] = []
        lps: list[float | None] = []
        for row, (t, lp) in enumerate(zip(step.ids, step.logprobs)):
            ids.append(None if ended[row] else t)
            lps.append(None if ended[row] else lp)
            if not ended[row]:
                seen[row].append(t)
                ended[row] = t in eos or (bool(stop) and any(
                    s in tokenizer.decode(seen[row], clean_up_tokenization_spaces=False) for s in stop))
        nothing: list[Any] = [None] * n
        base_ids, base_lps = (nothing, nothing) if baseline_reused else (ids[:n], lps[:n])
        if steering:
            steered_ids, steered_lps = ids[first_steered:first_steered + n], lps[first_steered:first_steered + n]
        else:
            steered_ids, steered_lps = base_ids, base_lps
        on_step(SteeringStep(step.step, base_ids, steered_ids, base_lps, steered_lps))

    return relay
