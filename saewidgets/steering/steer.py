"""Steering with SAE features: baseline and steered continuations from one batched call.

``steer`` adds ``sum(scale * W_dec[f])`` (plus any raw directions) to the residual
stream at the SAE's hook point, at every position of the prompt and of every
generated token. Each prompt runs twice in the same batch, once without the
vector (baseline) and once with it (steered), with the same decoding noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

from ..core.binding import Binding, bind
from ..core.locks import model_lock
from ..engine.generate import Generation, ResidualEdit, Step, check_decoding, eos_ids, generate

Prompts = str | Sequence[str]


@dataclass
class SteeringStep:
    """One generated step, as passed to ``on_step``: per prompt, the new token of each variant.

    An entry is ``None`` once that row's continuation has ended (its EOS came at an
    earlier step), so a stream shows exactly the tokens of the final result.
    """

    step: int
    baseline_ids: list[int | None]
    steered_ids: list[int | None]
    baseline_logprobs: list[float | None]
    steered_logprobs: list[float | None]


@dataclass
class Continuation:
    """One generated continuation: its text, token ids and their log-probabilities.

    It stops after the first end-of-sequence token: the token is kept in ``ids``
    (``ended`` is then True) and left out of ``text``.
    """

    text: str
    ids: list[int]
    logprobs: list[float]
    ended: bool


@dataclass
class SteeringResult:
    """Baseline and steered continuations of each prompt.

    ``.baseline``/``.steered`` (texts), ``.baseline_ids``/``.steered_ids`` and
    ``.baseline_logprobs``/``.steered_logprobs`` hold a plain value for a single
    (str) prompt and a list with one entry per prompt otherwise; the
    ``Continuation`` objects are in ``.baseline_runs``/``.steered_runs``. Log-probs
    are the model's own (temperature 1) log-probabilities of the chosen tokens,
    each under its own run.
    """

    prompts: list[str]
    baseline_runs: list[Continuation]
    steered_runs: list[Continuation]
    features: dict[int, float]
    directions: list[tuple[torch.Tensor, float]]
    vector: torch.Tensor  # the total vector added at every position (d_model)
    layer: int
    site: str
    settings: dict[str, Any]  # max_new_tokens, temperature, top_p, seed, prepend_bos
    prompt_ids: list[list[int]] = field(default_factory=list)  # each prompt's tokens as the model saw them
    single: bool = False  # the prompt was one string
    token_strings: dict[int, str] = field(default_factory=dict, repr=False)

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

        Columns: prompt_index, prompt, variant ("baseline" | "steered"), position
        (0 = first generated token), token_id, token (its decoded text), logprob.
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
    features: Mapping[int, float] | None = None,
    directions: Any = None,
    max_new_tokens: int = 32,
    temperature: float = 0.0,
    top_p: float | None = None,
    seed: int = 0,
    remote: bool | str = False,
    on_step: Callable[[SteeringStep], None] | None = None,
    hook: Any = None,
    progress: bool = True,
    prepend_bos: bool | None = None,
) -> SteeringResult:
    """Generate from ``prompt`` with and without the steering vector, side by side.

    The vector is ``sum(scale * W_dec[f] for f, scale in features.items())`` plus
    ``directions`` (a d_model vector, a k x d_model tensor of vectors, or a list of
    vectors or ``(vector, scale)`` pairs), added at the SAE's hook point (or
    ``hook``) at every prompt position and every generated token. ``model, sae``
    may be a ``Binding`` (``steer(binding, prompt=...)``). Several prompts run in
    the same batch.

    Decoding is greedy when ``temperature == 0``; otherwise it samples (optionally
    within ``top_p``) with noise drawn from ``seed``: the same seed gives the same
    result, and every row, baseline and steered, sees the same noise at each step,
    so the two variants differ only where steering changed the choice (Gumbel-max
    coupling; see ``saewidgets.engine.generate``). A total vector of zero (all
    scales 0) reproduces the baseline exactly: its steered rows are the baseline
    rows. ``on_step`` receives a ``SteeringStep`` after every step while a local
    model runs; with ``remote`` the steps arrive after the run.
    ``progress`` shows a progress bar over the generated tokens (local runs).
    ``prepend_bos`` (default: the SAE's ``prepend_bos`` setting, else False) starts
    each prompt with the BOS token, as the SAE saw in training.
    """
    if isinstance(model, Binding) and prompt is None and not isinstance(sae, Binding):
        sae, prompt = None, sae  # steer(binding, "prompt", ...)
    binding = _binding(model, sae, hook)
    prompts, single = _prompts(prompt)
    check_decoding(max_new_tokens, temperature, top_p, seed)
    if on_step is not None and not callable(on_step):
        raise ValueError(f"on_step must be a function taking a SteeringStep, got {type(on_step).__name__}")
    scales = _features(binding, features)
    pairs = _directions(binding, directions)
    vector = _total_vector(binding, scales, pairs)

    # Rows 0..n-1 are the baselines (nothing added), rows n..2n-1 the steered runs.
    # A zero vector changes nothing, so its steered rows are the baseline rows.
    n = len(prompts)
    offset = n if bool(vector.any()) else 0
    edit = None
    if offset:
        rows = torch.zeros(2 * n, binding.d_model, dtype=vector.dtype)
        rows[n:] = vector
        edit = ResidualEdit(binding.layer, binding.site, rows)
    if prepend_bos is None:
        prepend_bos = bool(binding.sae.metadata.get("prepend_bos", False))
    with model_lock(binding.model):  # one nnsight trace per model at a time (re-entrant: widgets hold it)
        generation = generate(
            binding.model, prompts * (2 if offset else 1), edit=edit, max_new_tokens=max_new_tokens,
            temperature=temperature, top_p=top_p, seed=seed, remote=remote, progress=progress,
            prepend_bos=prepend_bos,
            on_step=None if on_step is None else _streamer(on_step, n, offset, eos_ids(binding.model)),
        )

    runs = [_continuation(generation, row, binding.tokenizer) for row in range(n + offset)]
    seen = {t for run in runs for t in run.ids}
    return SteeringResult(
        prompts=prompts, baseline_runs=runs[:n], steered_runs=runs[offset:offset + n], features=scales,
        directions=pairs, vector=vector, layer=binding.layer, site=binding.site,
        settings=dict(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed,
                      prepend_bos=prepend_bos),
        prompt_ids=generation.prompt_ids[:n], single=single, token_strings=_token_strings(binding.tokenizer, seen),
    )


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


def _scale(value: Any, what: str) -> float:
    try:
        scale = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"the scale of {what} must be a number, got {value!r}") from None
    if not math.isfinite(scale):
        raise ValueError(f"the scale of {what} is {scale}: give a finite number")
    return scale


def _features(binding: Binding, features: Any) -> dict[int, float]:
    if features is None:
        return {}
    if not isinstance(features, Mapping):
        raise ValueError(
            f"features must be a dict {{feature: scale}}, for example {{12: 40.0}}; got {type(features).__name__}"
        )
    scales: dict[int, float] = {}
    for f, s in features.items():
        index = binding.check_feature(f)
        scales[index] = scales.get(index, 0.0) + _scale(s, f"feature {index}")
    return scales


def _directions(binding: Binding, directions: Any) -> list[tuple[torch.Tensor, float]]:
    if directions is None:
        return []
    if isinstance(directions, (list, tuple)):
        items = [d if isinstance(d, tuple) else (d, 1.0) for d in directions]
    else:
        try:
            matrix = torch.as_tensor(directions)
        except (TypeError, ValueError, RuntimeError):
            matrix = None
        if matrix is None or matrix.ndim not in (1, 2):
            raise ValueError(
                "directions must be a vector of length d_model, a k x d_model tensor, or a list of vectors "
                f"or (vector, scale) pairs; got {type(directions).__name__}"
            )
        items = [(row, 1.0) for row in (matrix[None] if matrix.ndim == 1 else matrix)]
    pairs = []
    for i, item in enumerate(items):
        if len(item) != 2:
            raise ValueError(f"direction {i} must be a vector or a (vector, scale) pair")
        vec = torch.as_tensor(item[0]).detach().float().cpu()
        if vec.ndim != 1 or vec.shape[0] != binding.d_model:
            raise ValueError(
                f"direction {i} has shape {tuple(vec.shape)}, but the residual stream at "
                f"{binding.site}[{binding.layer}] has width {binding.d_model}: give vectors of length {binding.d_model}"
            )
        if not torch.isfinite(vec).all():
            raise ValueError(f"direction {i} contains NaN or infinite values")
        pairs.append((vec, _scale(item[1], f"direction {i}")))
    return pairs


def _total_vector(binding: Binding, scales: dict[int, float], pairs: list) -> torch.Tensor:
    vector = torch.zeros(binding.d_model)
    W_dec = binding.sae.W_dec.detach()
    for f, s in scales.items():
        vector += s * W_dec[f].float().cpu()
    for vec, s in pairs:
        vector += s * vec
    return vector


def _continuation(generation: Generation, row: int, tokenizer: Any) -> Continuation:
    ids, logprobs = generation.continuation(row)
    ended = generation.ended[row]
    text = tokenizer.decode(ids[:-1] if ended else ids, clean_up_tokenization_spaces=False)
    return Continuation(text, ids, logprobs, ended)


def _token_strings(tokenizer: Any, ids: set[int]) -> dict[int, str]:
    return {t: tokenizer.decode([t], clean_up_tokenization_spaces=False) for t in sorted(ids)}


def _streamer(on_step: Callable[[SteeringStep], None], n: int, offset: int, eos: set[int]) -> Callable[[Step], None]:
    """Turn row-wise ``Step``s into ``SteeringStep``s, hiding tokens after each row's EOS."""
    ended = [False] * (n + offset)

    def relay(step: Step) -> None:
        ids: list[int | None] = []
        lps: list[float | None] = []
        for row, (t, lp) in enumerate(zip(step.ids, step.logprobs)):
            ids.append(None if ended[row] else t)
            lps.append(None if ended[row] else lp)
            ended[row] = ended[row] or t in eos
        on_step(SteeringStep(step.step, ids[:n], ids[offset:offset + n], lps[:n], lps[offset:offset + n]))

    return relay
