"""Where each model family keeps its blocks, residual stream, final norm and unembedding."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch

# (family, blocks, token embedding, final norm, unembedding); paths are attribute
# paths on the underlying transformers module (the same paths on the nnsight Envoy).
KNOWN_LAYOUTS: tuple[tuple[str, str, str, str, str], ...] = (
    ("gpt2", "transformer.h", "transformer.wte", "transformer.ln_f", "lm_head"),
    ("gpt-neox", "gpt_neox.layers", "gpt_neox.embed_in", "gpt_neox.final_layer_norm", "embed_out"),
    ("gpt-neox", "gpt_neox.layers", "gpt_neox.embed_in", "gpt_neox.final_layer_norm", "lm_head"),
    ("llama-like", "model.layers", "model.embed_tokens", "model.norm", "lm_head"),
    ("gpt-j", "transformer.h", "transformer.wte", "transformer.ln_f", "lm_head"),
    ("opt", "model.decoder.layers", "model.decoder.embed_tokens", "model.decoder.final_layer_norm", "lm_head"),
)


def resolve_path(root: Any, path: str) -> Any:
    """Follow a dotted attribute path (``"model.layers"``) from ``root``; ``None`` if absent."""
    obj = root
    for part in path.split("."):
        if not hasattr(obj, part):
            return None
        obj = getattr(obj, part)
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
        """Find the layout of a transformers causal LM, honouring explicit ``overrides``."""
        names = [f.name for f in fields(cls) if f.name != "family"]
        unknown = set(overrides) - set(names)
        if unknown:
            raise ValueError(f"unknown layout keys {sorted(unknown)}; valid keys are {names}")
        if len(overrides) == len(names):
            layout = cls(**overrides, family="custom")
            layout.validate(module)
            return layout
        for family, *paths in KNOWN_LAYOUTS:
            found = dict(zip(names, paths))
            found.update(overrides)
            if all(resolve_path(module, p) is not None for p in found.values()):
                model_type = getattr(getattr(module, "config", None), "model_type", None)
                layout = cls(**found, family=model_type or family if not overrides else "custom")
                layout.validate(module)
                return layout
        tried = "\n".join(
            f"  {family}: blocks={b!r}, embed={e!r}, final_norm={n!r}, unembed={u!r}"
            for family, b, e, n, u in KNOWN_LAYOUTS
        )
        raise ValueError(
            f"unknown model layout for {type(module).__name__}: none of these module paths "
            f"all exist:\n{tried}\nGive the paths explicitly, for example "
            "sw.load_model(model, layout=dict(blocks='model.layers', embed='model.embed_tokens', "
            "final_norm='model.norm', unembed='lm_head'))."
        )

    def validate(self, module: torch.nn.Module) -> None:
        """Raise a ValueError naming any path that does not resolve on ``module``."""
        for name in ("blocks", "embed", "final_norm", "unembed"):
            path = getattr(self, name)
            if resolve_path(module, path) is None:
                raise ValueError(
                    f"layout {name}={path!r} does not exist on {type(module).__name__}; "
                    "check the module names with print(model)"
                )
        if not isinstance(resolve_path(module, self.blocks), (torch.nn.ModuleList, torch.nn.Sequential)):
            raise ValueError(f"layout blocks={self.blocks!r} is not a list of blocks")

    def blocks_of(self, root: Any) -> Any:
        return resolve_path(root, self.blocks)

    def part(self, root: Any, name: str) -> Any:
        """The module (or nnsight Envoy) for ``name`` in blocks/embed/final_norm/unembed."""
        return resolve_path(root, getattr(self, name))
