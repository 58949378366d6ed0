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
    attach_self_explain_settings(sae)
    return model, sae


def attach_self_explain_settings(sae: Any, data_dir: Any = None) -> None:
    """Make the organism's fitted layer map its SAE's self-explanation default: a 4-block model reads
    the placeholder in its first blocks, while the SAE's directions live at block 2 (REPORT.md,
    "Self-explanation"). ``sw.self_explain(..., defaults=False)`` runs the paper's method instead."""
    from pathlib import Path

    from ..self_explanation.defaults import set_self_explain_defaults
    from ..self_explanation.layer_map import LayerMap
    from .ground_truth import DATA_DIR, LAYER_MAP_FILE

    path = Path(data_dir or DATA_DIR) / LAYER_MAP_FILE
    if path.is_file():
        set_self_explain_defaults(sae, layer_map=LayerMap.load(path))


def organism_raw(device: str | torch.device = "cpu") -> tuple[Any, Any]:
    """The organism as a plain `transformers.GPT2LMHeadModel` (eval mode) and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model: Any = AutoModelForCausalLM.from_pretrained(MODEL_DIR)
    model = model.to(device).eval()
    return model, AutoTokenizer.from_pretrained(MODEL_DIR)
