"""Checks and small conversions for the explorer's inputs (each a clear ValueError)."""

from __future__ import annotations

import math
import numbers
from typing import Any, Mapping, Sequence

from ..engine.decoding import LIMITS, check_float, check_int


def check_scale(value: Any) -> float:
    """A steering scale: a finite number within the shared limit (limits.json)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"the steering scale must be a number, got {value!r}")
    scale, limit = float(value), LIMITS["scale"]["max_abs"]
    if not math.isfinite(scale) or abs(scale) > limit:
        raise ValueError(f"the steering scale must be a finite number within ±{limit:g}, got {value!r} "
                         "(the previous scale is kept)")
    return scale


def check_prompt(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"the prompt must be text, got {type(value).__name__}")
    if not value.strip():
        raise ValueError("the prompt is empty: type some text for the model to continue (the previous prompt is kept)")
    return value


def check_max_new_tokens(value: Any) -> int:
    limit = LIMITS["max_new_tokens"]
    return check_int(value, "the number of tokens", int(limit["min"]), int(limit["max"]))


def check_temperature(value: Any) -> float:
    limit = LIMITS["temperature"]
    return check_float(value, "temperature (0 means greedy)", limit["min"], limit["max"])


def check_seed(value: Any) -> int:
    limit = LIMITS["seed"]
    return check_int(value, "the seed", int(limit["min"]), int(limit["max"]))


def check_decoding(max_new_tokens: Any, temperature: Any, seed: Any) -> None:
    check_max_new_tokens(max_new_tokens)
    check_temperature(temperature)
    check_seed(seed)


def check_choice(value: Any, choices: Sequence[str], what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"the {what} must be one of {list(choices)}, got {value!r}")
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {list(choices)}")
    return value


def check_bins(bins: Any) -> int:
    if isinstance(bins, bool) or not isinstance(bins, numbers.Integral) or not 5 <= int(bins) <= 500:
        raise ValueError(f"bins must be a whole number from 5 to 500, got {bins!r}")
    return int(bins)


def check_entries(binding: Any, entries: Any) -> list[dict]:
    """The extra steering entries: a list of ``{"feature": f, "scale": s}`` or ``(f, s)``."""
    if not isinstance(entries, (list, tuple)):
        raise ValueError(f"steering must be a list of {{'feature': f, 'scale': s}} entries, got {type(entries).__name__}")
    return [check_entry(binding, entry) for entry in entries]


def check_entry(binding: Any, entry: Any) -> dict:
    """One extra steering entry ``{"feature": f, "scale": s}`` (other keys are dropped)."""
    if isinstance(entry, Mapping):
        feature, scale = entry.get("feature"), entry.get("scale", 0.0)
    elif isinstance(entry, (tuple, list)) and len(entry) == 2:
        feature, scale = entry
    else:
        raise ValueError(f"a steering entry is {{'feature': f, 'scale': s}} or (f, s), got {entry!r}")
    return {"feature": binding.check_feature(feature), "scale": check_scale(scale)}


def normalise_explanations(explanations: Any, n_features: int) -> dict[int, str]:
    """``{feature: text}`` from a dict or a DataFrame (columns feature/index + explanation/description)."""
    if explanations is None:
        return {}
    pairs: Any
    if hasattr(explanations, "columns"):  # a DataFrame
        frame = explanations
        text_col = next((c for c in ("explanation", "description", "text") if c in frame.columns), None)
        if text_col is None:
            raise ValueError("the explanations DataFrame needs an 'explanation' (or 'description') column")
        if "feature" in frame.columns:
            pairs = zip(frame["feature"], frame[text_col])
        elif "index" in frame.columns:
            pairs = zip(frame["index"], frame[text_col])
        else:
            pairs = zip(frame.index, frame[text_col])
    elif isinstance(explanations, Mapping):
        pairs = explanations.items()
    else:
        raise ValueError(
            f"explanations must be a dict {{feature: text}} or a DataFrame, got {type(explanations).__name__}")
    out: dict[int, str] = {}
    for feature, text in pairs:
        if isinstance(feature, bool) or not isinstance(feature, numbers.Integral) and not str(feature).isdigit():
            raise ValueError(f"explanation keys must be feature indices, got {feature!r}")
        index = int(feature)
        if not 0 <= index < n_features:
            raise ValueError(f"an explanation is given for feature {index}, but the SAE has {n_features} features")
        if text is None or (isinstance(text, float) and math.isnan(text)):
            continue
        out[index] = str(text)
    return out


def normalise_typical_activation(values: Any, n_features: int) -> dict[int, float]:
    """``{feature: typical activation}`` from a sequence (one per feature) or a mapping."""
    if values is None:
        return {}
    items = values.items() if isinstance(values, Mapping) else enumerate(list(getattr(values, "tolist", lambda: values)()))
    out = {}
    for feature, value in items:
        value = float(value)
        if math.isfinite(value) and value > 0 and 0 <= int(feature) < n_features:
            out[int(feature)] = value
    return out


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k that is >= value."""
    if not value > 0 or not math.isfinite(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value * (1 - 1e-9):
            return float(step * power)
    return float(10 * power)


def scale_range(decoder_norm: float, reference_norm: float | None, typical: float | None) -> dict[str, float]:
    """Slider range for a feature: ``max`` (symmetric) and ``linear`` (fine control below it).

    With a typical activation the slider spans twice it; otherwise it spans a
    vector up to 4x the typical residual norm at the hook (``reference_norm``),
    in units of this feature's decoder norm.
    """
    if typical:
        top = 2.0 * typical
    else:
        norm = decoder_norm if decoder_norm > 0 else 1.0
        top = 4.0 * (reference_norm or 1.0) / norm
    top = nice_ceiling(top)
    return {"max": top, "linear": top / 100.0}
