"""Loading a language model as an nnsight model, and reading its parts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .layout import ModelLayout

_LAYOUT_ATTR = "_saewidgets_layout"


def load_model(spec: Any, tokenizer: Any = None, *, layout: dict | None = None, **kwargs: Any) -> Any:
    """Return an nnsight ``TransformersModel`` for ``spec``.

    ``spec`` is a hub id, a local Hugging Face directory, a transformers model
    (pass ``tokenizer=`` unless it can be found next to the model's files) or an
    existing nnsight model (returned as is). Keyword arguments such as
    ``device_map``, ``dtype`` and ``dispatch`` pass through to nnsight; local
    models are dispatched (loaded) right away unless ``dispatch=False``.
    ``layout`` gives module paths (blocks, embed, final_norm, unembed) for a
    model family that is not recognised.
    """
    from nnsight import TransformersModel
    from nnsight.intervention.envoy import Envoy

    if isinstance(spec, Envoy):
        model = spec
    elif isinstance(spec, torch.nn.Module):
        tokenizer = tokenizer or _tokenizer_for(spec)
        model = TransformersModel(spec, tokenizer=tokenizer, **kwargs)
    elif isinstance(spec, (str, os.PathLike)):
        model = _load_from_path_or_hub(str(spec), tokenizer, kwargs)
    else:
        raise TypeError(
            f"load_model got a {type(spec).__name__}; give a hub id, a local directory, "
            "a transformers model or an nnsight model"
        )
    _attach_layout(model, layout)
    return model


def _load_from_path_or_hub(spec: str, tokenizer: Any, kwargs: dict) -> Any:
    from nnsight import TransformersModel

    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ValueError(
                f"{path} is not a Hugging Face model directory: it has no config.json "
                "(expected config.json, weights and tokenizer files, as written by save_pretrained)"
            )
        kwargs.setdefault("dispatch", True)
        return TransformersModel(str(path), tokenizer=tokenizer, **kwargs)
    try:
        return TransformersModel(spec, tokenizer=tokenizer, **kwargs)
    except OSError as error:
        raise ValueError(
            f"could not load model {spec!r}: it is not a local directory, and loading it "
            f"from the Hugging Face hub failed ({error}). Check the id, your network, or "
            "give a local directory."
        ) from error


def _tokenizer_for(module: torch.nn.Module) -> Any:
    source = getattr(getattr(module, "config", None), "name_or_path", "") or ""
    if source and Path(source).is_dir():
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(source)
    raise ValueError(
        f"no tokenizer for this {type(module).__name__}: pass tokenizer=... "
        "(for example transformers.AutoTokenizer.from_pretrained(...))"
    )


def _attach_layout(model: Any, overrides: dict | None) -> None:
    layout = ModelLayout.detect(model._module, **(overrides or {}))
    model.__dict__[_LAYOUT_ATTR] = layout


def model_layout(model: Any) -> ModelLayout:
    """The ``ModelLayout`` of an nnsight model (detected on first use)."""
    layout = model.__dict__.get(_LAYOUT_ATTR)
    if layout is None:
        _attach_layout(model, None)
        layout = model.__dict__[_LAYOUT_ATTR]
    return layout


def hidden_size(module: torch.nn.Module) -> int:
    config = module.config
    for name in ("hidden_size", "n_embd", "d_model"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    text = getattr(config, "text_config", None)
    if text is not None:
        return hidden_size(type("M", (), {"config": text})())
    raise ValueError(f"cannot find the hidden size in {type(config).__name__}")


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
