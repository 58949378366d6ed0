"""``Decoding``: how the engine picks tokens, validated once, with limits shared with the front end.

The limits live in ``limits.json`` beside this file; the JS bundle imports the same file, so a value
the view accepts is one Python accepts. The model's context length is checked separately, per
prompt, by ``check_context`` (it depends on the prompt's token count).
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

LIMITS: dict[str, dict[str, float]] = json.loads((Path(__file__).with_name("limits.json")).read_text())


def check_int(value: Any, name: str, lo: int, hi: int, fix: str = "") -> int:
    """``value`` as an int in ``lo..hi``, else a ValueError naming the value, the limits and ``fix``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be a whole number from {lo} to {hi}, got {value!r}{fix}")
    number = int(value)
    if not lo <= number <= hi:
        raise ValueError(f"{name} must be from {lo} to {hi}, got {number}{fix}")
    return number


def check_float(value: Any, name: str, lo: float, hi: float, *, open_lo: bool = False) -> float:
    """``value`` as a finite float in ``[lo, hi]`` (``(lo, hi]`` with ``open_lo``), else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    number = float(value)
    low_ok = number > lo if open_lo else number >= lo
    if not math.isfinite(number) or not low_ok or number > hi:
        bracket = "(" if open_lo else "["
        raise ValueError(f"{name} must be a finite number in {bracket}{lo:g}, {hi:g}], got {value!r}")
    return number


@dataclass(frozen=True)
class Decoding:
    """One set of decoding settings for every generation the engine runs.

    ``temperature == 0`` is greedy; otherwise tokens are sampled (within ``top_p``) with
    Gumbel noise drawn from ``seed``, the same noise for every row of a batch (see
    ``saewidgets.engine.run``). ``prepend_bos`` starts each prompt with the BOS token
    (``None``: the SAE's setting where there is one, else no). A continuation ends at its
    first end-of-sequence token or at the first of the ``stop`` strings (cut before it).
    """

    max_new_tokens: int = 32
    temperature: float = 0.0
    top_p: float | None = None
    seed: int = 0
    prepend_bos: bool | None = None
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n, t, p, s = LIMITS["max_new_tokens"], LIMITS["temperature"], LIMITS["top_p"], LIMITS["seed"]
        object.__setattr__(self, "max_new_tokens",
                           check_int(self.max_new_tokens, "max_new_tokens", int(n["min"]), int(n["max"])))
        object.__setattr__(self, "temperature", check_float(self.temperature, "temperature (0 means greedy)", t["min"], t["max"]))
        if self.top_p is not None:
            object.__setattr__(self, "top_p", check_float(self.top_p, "top_p", p["min"], p["max"], open_lo=True))
        object.__setattr__(self, "seed", check_int(self.seed, "seed", int(s["min"]), int(s["max"])))
        if self.prepend_bos is not None and not isinstance(self.prepend_bos, bool):
            raise ValueError(f"prepend_bos must be True, False or None (the SAE's setting), got {self.prepend_bos!r}")
        object.__setattr__(self, "stop", check_stop(self.stop))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def with_bos(self, default: bool) -> "Decoding":
        """This decoding with ``prepend_bos`` resolved (``default`` where it is None)."""
        return self if self.prepend_bos is not None else replace(self, prepend_bos=bool(default))

    def to_dict(self) -> dict[str, Any]:
        return {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature, "top_p": self.top_p,
                "seed": self.seed, "prepend_bos": self.prepend_bos, "stop": list(self.stop)}

    @classmethod
    def of(cls, value: "Decoding | dict | None" = None, **overrides: Any) -> "Decoding":
        """A Decoding from a Decoding, a dict of its fields, or keywords (which win)."""
        if value is None:
            base: dict[str, Any] = {}
        elif isinstance(value, Decoding):
            base = value.to_dict()
        elif isinstance(value, dict):
            base = dict(value)
        else:
            raise ValueError(f"decoding must be an sw.Decoding or a dict of its fields, got {type(value).__name__}")
        unknown = sorted(set(base) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown decoding settings {unknown}; the settings are {list(cls.__dataclass_fields__)}")
        base.update({k: v for k, v in overrides.items() if v is not None or k in ("top_p", "prepend_bos")})
        if isinstance(base.get("stop"), list):
            base["stop"] = tuple(base["stop"])
        return cls(**base)


def check_stop(stop: Any) -> tuple[str, ...]:
    """Stop strings: a string or a sequence of non-empty strings (at most the shared limits)."""
    limit = LIMITS["stop"]
    if stop is None:
        return ()
    items: Sequence[Any] = (stop,) if isinstance(stop, str) else stop
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"stop must be a string or a list of strings, got {type(stop).__name__}")
    if len(items) > limit["max_count"]:
        raise ValueError(f"at most {int(limit['max_count'])} stop strings, got {len(items)}")
    for item in items:
        if not isinstance(item, str) or not item or len(item) > limit["max_length"]:
            raise ValueError(
                f"each stop string must be non-empty text of at most {int(limit['max_length'])} characters, got {item!r}")
    return tuple(items)


def context_length(model: Any) -> int | None:
    """The model's maximum number of positions (prompt + generated tokens), if its config says."""
    config = getattr(getattr(model, "_module", model), "config", None)
    for cfg in (config, getattr(config, "text_config", None)):
        for name in ("n_positions", "max_position_embeddings", "n_ctx", "seq_length"):
            value = getattr(cfg, name, None)
            if isinstance(value, int) and value > 0:
                return value
    return None


def check_context(model: Any, prompt_lengths: Sequence[int], max_new_tokens: int = 0) -> None:
    """A ValueError before any model call when a prompt plus its new tokens exceed the context."""
    limit = context_length(model)
    if limit is None or not prompt_lengths:
        return
    longest = max(prompt_lengths)
    row = list(prompt_lengths).index(longest)
    if longest > limit:
        raise ValueError(
            f"prompt {row} has {longest} tokens, more than this model's context of {limit} positions: "
            f"shorten it by {longest - limit} tokens or more")
    if longest + max_new_tokens > limit:
        fits = limit - longest
        raise ValueError(
            f"prompt {row} has {longest} tokens and {max_new_tokens} new tokens were asked for, but this model's "
            f"context is {limit} positions: ask for at most {fits} new tokens, or shorten the prompt")
