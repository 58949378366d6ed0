"""Where each model family keeps its blocks, residual stream, final norm and unembedding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

# (family, blocks, token embedding, final norm, unembedding): attribute paths on the
# transformers module (the same paths work on the nnsight Envoy). "llama-like" covers
# Llama, Mistral, Qwen2, Gemma, Gemma2 and Phi-3; "gpt2" also covers GPT-J.
KNOWN_LAYOUTS: tuple[tuple[str, str, str, str, str], ...] = (
    ("gpt2", "transformer.h", "transformer.wte", "transformer.ln_f", "lm_head"),
    ("gpt-neox", "gpt_neox.layers", "gpt_neox.embed_in", "gpt_neox.final_layer_norm", "lm_head"),  # transformers 5
    ("gpt-neox", "gpt_neox.layers", "gpt_neox.embed_in", "gpt_neox.final_layer_norm", "embed_out"),  # transformers 4
    ("llama-like", "model.layers", "model.embed_tokens", "model.norm", "lm_head"),
    ("opt", "model.decoder.layers", "model.decoder.embed_tokens", "model.decoder.final_layer_norm", "lm_head"),
)
PARTS = ("blocks", "embed", "final_norm", "unembed")


def resolve_path(root: Any, path: str) -> Any:
    """Follow a dotted attribute path (``"model.layers"``) from ``root``; ``None`` if absent."""
    obj = root
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


@dataclass(frozen=True)
class ModelLayout:
    """Dotted module paths of one model's parts.

    ``blocks`` is the list of transformer blocks (resid_pre[l] is the input of
    block l, resid_post[l] its output), ``embed`` the token embedding, ``final_norm``
    the norm applied before ``unembed`` (the LM head).
    """

    blocks: str
    embed: str
    final_norm: str
    unembed: str
    family: str = "custom"

    @classmethod
    def detect(cls, module: torch.nn.Module, **overrides: str) -> "ModelLayout":
        """Find the layout of a transformers causal LM; explicit ``overrides`` win."""
        unknown = set(overrides) - set(PARTS)
        if unknown:
            raise ValueError(f"unknown layout keys {sorted(unknown)}; valid keys are {list(PARTS)}")
        for name, path in overrides.items():
            _check_path(module, name, path)
        if len(overrides) == len(PARTS):
            return cls(**overrides).validate(module)
        model_type = getattr(getattr(module, "config", None), "model_type", None)
        for family, *paths in KNOWN_LAYOUTS:
            found = {**dict(zip(PARTS, paths)), **overrides}
            if all(resolve_path(module, p) is not None for p in found.values()):
                family = "custom" if overrides else (model_type or family)
                return cls(**found, family=family).validate(module)
        tried = "\n".join(
            f"  {family}: blocks={b!r}, embed={e!r}, final_norm={n!r}, unembed={u!r}"
            for family, b, e, n, u in KNOWN_LAYOUTS
        )
        children = [name for name, _ in module.named_children()]
        raise ValueError(
            f"unknown model layout for {type(module).__name__} (top-level modules: {children}): "
            f"none of these sets of module paths all exist:\n{tried}\n"
            "Give the paths explicitly (print(model) shows the module names), for example "
            "sw.load_model(model, tokenizer=tok, layout=dict(blocks='model.layers', "
            "embed='model.embed_tokens', final_norm='model.norm', unembed='lm_head'))."
        )

    def validate(self, module: torch.nn.Module) -> "ModelLayout":
        """``self`` if every path resolves on ``module``, else a ValueError naming the bad one."""
        for name in PARTS:
            _check_path(module, name, getattr(self, name))
        if not isinstance(resolve_path(module, self.blocks), (torch.nn.ModuleList, torch.nn.Sequential)):
            raise ValueError(
                f"layout blocks={self.blocks!r} is a {type(resolve_path(module, self.blocks)).__name__}, "
                "not a list of transformer blocks (torch.nn.ModuleList)"
            )
        return self

    def blocks_of(self, root: Any) -> Any:
        """The blocks: an Envoy list for an nnsight model, a ModuleList for a torch module."""
        return resolve_path(root, self.blocks)

    def part(self, root: Any, name: str) -> Any:
        """The module (or nnsight Envoy) for ``name`` in blocks/embed/final_norm/unembed."""
        if name not in PARTS:
            raise ValueError(f"unknown layout part {name!r}; valid parts are {list(PARTS)}")
        return resolve_path(root, getattr(self, name))


def _check_path(module: torch.nn.Module, name: str, path: Any) -> None:
    if not isinstance(path, str) or resolve_path(module, path) is None:
        children = [child for child, _ in module.named_children()]
        raise ValueError(
            f"layout {name}={path!r} does not exist on {type(module).__name__} "
            f"(top-level modules: {children}); give a dotted module path such as "
            "'model.layers' (print(model) shows the module names)"
        )
