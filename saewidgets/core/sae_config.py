"""An SAE config read field by field, each with its type: SAELens ``cfg.json`` (v6 with a
nested ``metadata``, and pre-6.0), a SAELens object's ``cfg`` and ``load_sae`` keywords.

A value of the wrong type is a ValueError naming where it came from (the file), the key, the
value and what is expected; nothing is coerced: ``"false"`` is not a boolean (write the JSON
boolean ``false``), ``8.7`` is not an integer (``8.0`` is read as 8), ``"8"`` is not a number.
Keys this module does not know are kept as metadata when they hold JSON values.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Callable, Mapping

import torch

_SHOWN = 80  # characters of a bad value quoted in an error


class _Wrong(Exception):
    """Raised by a field reader: the value is not what the field expects."""


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if type(value).__name__ == "bool_":  # numpy.bool_
        return bool(value)
    raise _Wrong("true or false (a JSON boolean, written without quotes)")


def _integer(minimum: int) -> Callable[[Any], int]:
    expected = "a non-negative integer" if minimum == 0 else f"an integer >= {minimum}"

    def read(value: Any) -> int:
        if isinstance(value, bool):
            raise _Wrong(expected)
        if isinstance(value, numbers.Integral):
            number = int(value)
        elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
            number = int(value)
        else:
            raise _Wrong(f"{expected} (a JSON number without a fraction, not a string)")
        if number < minimum:
            raise _Wrong(expected)
        return number

    return read


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise _Wrong("a string")


def _device(value: Any) -> str:
    if isinstance(value, (str, torch.device)):
        return str(value)
    raise _Wrong("a device name such as \"cpu\" or \"cuda\"")


def _dtype(value: Any) -> str:
    if isinstance(value, torch.dtype):
        return str(value).replace("torch.", "")
    if isinstance(value, str):
        return value
    raise _Wrong("a dtype name such as \"float32\" or \"bfloat16\"")


def _normalization(value: Any) -> str | bool:
    if isinstance(value, (str, bool)):
        return value
    raise _Wrong("a string such as \"none\" (or, in configs before SAELens 6, true / false)")


def _mapping(value: Any) -> dict:
    if isinstance(value, Mapping):
        return dict(value)
    raise _Wrong("a JSON object ({...})")


def _activation_kwargs(value: Any) -> dict:
    kwargs = _mapping(value)
    if kwargs.get("k") is not None:
        try:
            kwargs["k"] = _integer(1)(kwargs["k"])
        except _Wrong as wrong:
            raise _Wrong(f"an object whose k is {wrong}") from None
    return kwargs


# The fields saewidgets reads, and the metadata it relies on (steering reads prepend_bos).
FIELDS: dict[str, Callable[[Any], Any]] = {
    "architecture": _string,
    "d_in": _integer(1),
    "d_sae": _integer(1),
    "dtype": _dtype,
    "device": _device,
    "k": _integer(1),
    "apply_b_dec_to_input": _bool,
    "normalize_activations": _normalization,
    "rescale_acts_by_decoder_norm": _bool,
    "finetuning_scaling_factor": _bool,
    "hook_name": _string,
    "hook_point": _string,
    "hook_layer": _integer(0),
    "hook_point_layer": _integer(0),
    "hook_head_index": _integer(0),
    "activation_fn": _string,
    "activation_fn_str": _string,
    "activation_fn_kwargs": _activation_kwargs,
    "reshape_activations": _string,
    "model_name": _string,
    "model_class_name": _string,
    "prepend_bos": _bool,
    "context_size": _integer(1),
    "dataset_path": _string,
    "neuronpedia_id": _string,
    "sae_lens_version": _string,
    "sae_lens_training_version": _string,
    "model_from_pretrained_kwargs": _mapping,
}


def read_config(raw: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``raw`` as one flat config: the nested ``metadata`` object (SAELens 6) merged in
    (top-level keys win), every known field checked, ``None`` values dropped.

    ``source`` says where ``raw`` came from in errors (``"/path/cfg.json"``).
    """
    flat: dict[str, Any] = {}
    nested = raw.get("metadata")
    if nested is not None:
        try:
            nested = _mapping(nested)
        except _Wrong as wrong:
            raise _error(source, "metadata", nested, str(wrong)) from None
        for key, value in nested.items():
            flat[key] = _field(source, key, value, prefix="metadata.")
    for key, value in raw.items():
        if key != "metadata":
            checked = _field(source, key, value)
            if checked is not None or key not in flat:
                flat[key] = checked
    return {key: value for key, value in flat.items() if value is not None}


def _field(source: str, key: Any, value: Any, prefix: str = "") -> Any:
    if not isinstance(key, str):
        raise ValueError(f"{source}: config keys must be strings, got {key!r}")
    reader = FIELDS.get(key)
    if value is None or reader is None:
        return value
    try:
        return reader(value)
    except _Wrong as wrong:
        raise _error(source, prefix + key, value, str(wrong)) from None


def _error(source: str, key: str, value: Any, expected: str) -> ValueError:
    shown = repr(value)
    shown = shown if len(shown) <= _SHOWN else shown[: _SHOWN - 3] + "..."
    return ValueError(f"{source}: {key} is {shown} ({type(value).__name__}); expected {expected}")


def normalise_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """One dialect out of SAELens v6, pre-6.0 and Gemma Scope spellings: ``architecture``
    (``relu`` -> standard, ``jump_relu`` -> jumprelu, TopK spelt as an activation function),
    ``k`` (also from ``activation_fn_kwargs``), ``normalize_activations`` (pre-6.0 booleans)
    and ``hook_name`` (pre-6.0 ``hook_point``)."""
    cfg = dict(cfg)
    activation = cfg.get("activation_fn") or cfg.get("activation_fn_str")
    k = cfg.get("k")
    if k is None:
        k = cfg.get("activation_fn_kwargs", {}).get("k")
    arch: Any = cfg.get("architecture") or ("topk" if activation == "topk" else None)
    arch = {"relu": "standard", "jump_relu": "jumprelu", "top_k": "topk"}.get(arch, arch)
    if arch == "standard" and activation == "topk":  # SAELens < 5 spelt TopK this way
        arch = "topk"
    normalize = cfg.get("normalize_activations")
    if isinstance(normalize, bool):  # pre-6.0: True meant the April-update scaling
        normalize = "expected_average_only_in" if normalize else "none"
    if cfg.get("hook_name") is None and cfg.get("hook_point") is not None:
        cfg["hook_name"] = cfg["hook_point"]
    return {**cfg, "architecture": arch, "k": k, "normalize_activations": normalize or "none"}


def object_config(cfg: Any) -> dict[str, Any]:
    """A SAELens ``cfg`` object (v5 flat, v6 with ``metadata`` and ``architecture()``) as a
    dict: ``to_dict()`` when it has one (what SAELens writes to ``cfg.json``), then every
    public non-callable attribute it does not cover."""
    raw = _plain(cfg)
    arch = getattr(cfg, "architecture", None)
    raw["architecture"] = arch() if callable(arch) else arch
    metadata = raw.get("metadata", getattr(cfg, "metadata", None))
    if metadata is not None and not isinstance(metadata, Mapping):
        raw["metadata"] = _plain(metadata)
    return raw


def _plain(obj: Any) -> dict[str, Any]:
    if obj is None:
        return {}
    to_dict = getattr(obj, "to_dict", None)
    raw: dict[str, Any] = {}
    if callable(to_dict):
        try:
            raw = dict(to_dict())
        except Exception:  # a duck-typed object whose to_dict needs arguments, or fails
            raw = {}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for item in dataclasses.fields(obj):
            raw.setdefault(item.name, getattr(obj, item.name, None))
    names = list(vars(obj)) if hasattr(obj, "__dict__") else []
    names += [name for name in dir(type(obj)) if name not in names]
    for name in names:
        if name.startswith("_") or name in raw:
            continue
        try:
            value = getattr(obj, name)
        except Exception:  # a property that cannot be computed is not config
            continue
        if not callable(value) and not isinstance(value, property):
            raw[name] = value
    return raw


def json_value(value: Any) -> Any:
    """``value`` as JSON data (tuples become lists), or ``None`` when it is not JSON data."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, (list, tuple)):
        items = [json_value(item) for item in value]
        return None if any(i is None and v is not None for i, v in zip(items, value)) else items
    if isinstance(value, Mapping) and all(isinstance(key, str) for key in value):
        entries = {key: json_value(item) for key, item in value.items()}
        return None if any(entries[k] is None and value[k] is not None for k in value) else entries
    return None
