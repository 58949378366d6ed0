"""Loading a language model as an nnsight model, and reading its parts."""

from __future__ import annotations

import importlib.util
import os
import pickle
import weakref
from pathlib import Path
from typing import Any

import torch

from .hub_errors import HubFailure, cached_on_disk, hub_error, hub_failure, hub_offline
from .layout import ModelLayout

# Layouts live beside the models, not in them: whatever sits in an nnsight model's
# __dict__ travels with every remote request.
_LAYOUTS: "weakref.WeakKeyDictionary[Any, ModelLayout]" = weakref.WeakKeyDictionary()
_SPREADING_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "vocab.txt")


def load_model(spec: Any, tokenizer: Any = None, *, layout: dict | ModelLayout | None = None, **kwargs: Any) -> Any:
    """Return an nnsight ``TransformersModel`` for ``spec``.

    ``spec`` is a hub id, a local Hugging Face directory, a transformers model
    (pass ``tokenizer=`` unless its files sit in the directory it was loaded from)
    or an existing nnsight model (returned as is). Keyword arguments such as
    ``device_map``, ``dtype`` and ``dispatch`` pass through to nnsight; models load their weights
    right away unless ``dispatch=False`` (local directories offline).
    ``layout`` gives module paths (``blocks``, ``embed``, ``final_norm``, ``unembed``)
    for a model family that is not recognised.
    """
    from nnsight import TransformersModel
    from nnsight.intervention.envoy import Envoy

    _device_map_without_accelerate(kwargs)
    if isinstance(spec, Envoy):
        if tokenizer is not None or kwargs:
            raise ValueError(
                "this is already an nnsight model: loading options (tokenizer=, "
                f"{', '.join(kwargs) or 'device_map=...'}) only apply when loading from a path, "
                "a hub id or a transformers model"
            )
        if getattr(spec, "tokenizer", None) is None:
            raise ValueError("this nnsight model has no tokenizer: wrap the root model, with its tokenizer")
        model = spec
    elif isinstance(spec, torch.nn.Module):
        model = TransformersModel(spec, tokenizer=tokenizer or _tokenizer_for(spec), **kwargs)
    elif isinstance(spec, (str, os.PathLike)):
        model = _load_from_path_or_hub(str(spec), tokenizer, kwargs)
    else:
        raise TypeError(
            f"load_model got a {type(spec).__name__}; give a hub id, a local directory, "
            "a transformers model (with tokenizer=) or an nnsight model"
        )
    if layout is not None or model not in _LAYOUTS:
        _LAYOUTS[model] = _layout_for(model._module, layout)
    return model


def _device_map_without_accelerate(kwargs: dict) -> None:
    """A one-device ``device_map`` ("cuda", "cpu", torch.device) needs no ``accelerate``:
    without it, hand the device to the pipeline instead; multi-device maps need it."""
    device_map = kwargs.get("device_map")
    if device_map is None or importlib.util.find_spec("accelerate") is not None:
        return
    if isinstance(device_map, (str, torch.device)) and str(device_map) not in _SPREADING_MAPS:
        kwargs["device"] = kwargs.pop("device_map")
    else:
        raise ValueError(
            f"device_map={device_map!r} spreads the model with the accelerate package, which is not "
            "installed: pip install accelerate (or 'saewidgets[accelerate]'), or give one device (device_map='cuda')"
        )


def _layout_for(module: torch.nn.Module, layout: dict | ModelLayout | None) -> ModelLayout:
    if isinstance(layout, ModelLayout):
        return layout.validate(module)
    if layout is not None and not isinstance(layout, dict):
        raise TypeError(f"layout must be a dict of module paths or a ModelLayout, got {type(layout).__name__}")
    return ModelLayout.detect(module, **(layout or {}))


def _load_from_path_or_hub(spec: str, tokenizer: Any, kwargs: dict) -> Any:
    from nnsight import TransformersModel

    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"{path} is not a Hugging Face model directory: it has no config.json "
                "(save one with model.save_pretrained(path) and tokenizer.save_pretrained(path))"
            )
        # An explicit task keeps nnsight from asking the hub what the model is: offline and fast.
        kwargs.setdefault("task", "text-generation")
        kwargs.setdefault("dispatch", True)
        try:
            return TransformersModel(str(path), tokenizer=tokenizer or _local_tokenizer(path), **kwargs)
        except pickle.UnpicklingError as error:
            raise ValueError(
                f"refusing to load {path}: its weights are a pickle that holds more than tensors, and "
                "loading it could run code. Use weights saved as safetensors (model.save_pretrained)."
            ) from error
    if path.exists():
        raise ValueError(f"{path} is a file; give the model's directory (with config.json) instead")
    if path.is_absolute() or spec.startswith((".", "~")) or spec.count("/") > 1:
        raise FileNotFoundError(f"no model directory at {path}; check the path (it does not exist)")
    try:
        if hub_offline():
            kwargs.setdefault("task", "text-generation")  # nnsight cannot ask the hub for the task offline
        elif kwargs.get("task") is None:
            kwargs["task"] = _hub_task(spec, kwargs.get("token"))
        # Load the weights now, as for local folders: the logit lens reads W_U and W_dec locally
        # (dispatch=False keeps nnsight's lazy meta model, e.g. for remote=True on NDIF).
        kwargs.setdefault("dispatch", True)
        if tokenizer is None:
            # nnsight 0.8 finds the tokenizer of a hub model it has not dispatched through a pipeline
            # flag that transformers 5 dropped ("Impossible to guess which tokenizer to use"): load it here.
            tokenizer = _hub_tokenizer(spec, kwargs)
        return TransformersModel(spec, tokenizer=tokenizer, **kwargs)
    except Exception as error:
        failure = hub_failure(error)
        if failure is None and not isinstance(error, (OSError, ValueError)):
            raise
        raise _hub_load_error(spec, path, error, failure, kwargs.get("revision")) from error


def _hub_load_error(spec: str, path: Path, error: Exception, failure: HubFailure | None, revision: str | None) -> ValueError:
    lead = (
        f"could not load model {spec!r}: it is not a local directory (nothing at {path.absolute()}), "
        "and loading it from the Hugging Face hub failed"
    )
    alternative = "give a local directory (model.save_pretrained(path) and tokenizer.save_pretrained(path))"
    if failure is None:
        first = str(error).splitlines()[0] if str(error) else ""
        return ValueError(
            f"{lead} ({type(error).__name__}: {first}). Check the id and your network (or the local cache "
            f"when HF_HUB_OFFLINE=1), or {alternative}."
        )
    cached = cached_on_disk(spec, "config.json", revision)
    return hub_error(lead, spec, failure, cached=cached, alternative=alternative)


def _hub_task(spec: str, token: Any) -> str:
    """The model's pipeline task, from one quick hub request: an unreachable hub or an
    unknown id fails here, before any download. A repository without a pipeline tag is
    taken for what saewidgets works with, a causal LM."""
    from transformers.pipelines import get_task

    try:
        return get_task(spec, token=token)
    except RuntimeError as error:
        if hub_failure(error) is not None:
            raise
        return "text-generation"


def _hub_tokenizer(spec: str, kwargs: dict) -> Any:
    from transformers import AutoTokenizer

    options = {key: kwargs[key] for key in ("revision", "token", "trust_remote_code") if key in kwargs}
    return AutoTokenizer.from_pretrained(spec, **options)


def _local_tokenizer(path: Path) -> Any:
    if not any((path / name).is_file() for name in _TOKENIZER_FILES):
        raise ValueError(
            f"{path} has no tokenizer files (one of {', '.join(_TOKENIZER_FILES)}): save the "
            "tokenizer there with tokenizer.save_pretrained(path), or pass tokenizer=..."
        )
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def _tokenizer_for(module: torch.nn.Module) -> Any:
    source = getattr(getattr(module, "config", None), "name_or_path", "") or ""
    if source and Path(source).is_dir():
        return _local_tokenizer(Path(source))
    raise ValueError(
        f"no tokenizer for this {type(module).__name__}: pass tokenizer=... "
        "(for example transformers.AutoTokenizer.from_pretrained(...))"
    )


def model_layout(model: Any) -> ModelLayout:
    """The ``ModelLayout`` of an nnsight model (detected on first use)."""
    layout = _LAYOUTS.get(model)
    if layout is None:
        layout = _LAYOUTS[model] = _layout_for(model._module, None)
    return layout


def hidden_size(module: torch.nn.Module, layout: ModelLayout | None = None) -> int:
    """Width of the residual stream: from the config, else from the token embedding."""
    config = getattr(module, "config", None)
    for cfg in (config, getattr(config, "text_config", None)):
        for name in ("hidden_size", "n_embd", "d_model"):
            value = getattr(cfg, name, None)
            if isinstance(value, int):
                return value
    weight = getattr(layout.part(module, "embed"), "weight", None) if layout else None
    if isinstance(weight, torch.Tensor):
        return weight.shape[-1]
    raise ValueError(f"cannot find the hidden size of {type(module).__name__}: its config has no hidden_size")


def model_device(model: Any) -> torch.device:
    """Device of the first parameter of the underlying module."""
    try:
        return next(model._module.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def model_id(model: Any) -> str:
    """A short, stable name for cache keys and titles."""
    config = getattr(model._module, "config", None)
    return str(getattr(config, "_name_or_path", "") or getattr(config, "model_type", "model"))
