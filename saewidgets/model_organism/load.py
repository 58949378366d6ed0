"""`organism()`: the shipped model organism as (nnsight model, saewidgets.SAE)."""

from __future__ import annotations

from typing import Any

import torch

from .ground_truth import MODEL_DIR, SAE_DIR


def organism(device: str | torch.device | None = None) -> tuple[Any, Any]:
    """Load the built-in model organism: a 4-layer GPT-2 and a TopK SAE on `blocks.2.hook_resid_pre`.

    Works offline from the files shipped in the package; returns fresh objects on every call
    (callers may mutate them). See `organism_ground_truth()` for its known features.
    """
    from saewidgets import load_model, load_sae

    kwargs: dict[str, Any] = {"device_map": str(device)} if device is not None else {}
    model = load_model(MODEL_DIR, **kwargs)
    sae = load_sae(SAE_DIR, device=device)
    return model, sae


def organism_raw(device: str | torch.device = "cpu") -> tuple[Any, Any]:
    """The organism as a plain `transformers.GPT2LMHeadModel` (eval mode) and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model: Any = AutoModelForCausalLM.from_pretrained(MODEL_DIR)
    model = model.to(device).eval()
    return model, AutoTokenizer.from_pretrained(MODEL_DIR)
