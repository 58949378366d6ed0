"""``Binding``: one model, one SAE and the hook point that ties them, validated once."""

from __future__ import annotations

import weakref
from functools import cached_property
from typing import Any, Iterable

import torch

from .layout import ModelLayout
from .model import hidden_size, model_device, model_layout
from .sae import SAE, HookPoint, check_index

_CACHE: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


class Binding:
    """An nnsight model, an SAE and the residual-stream point the SAE reads.

    Everything downstream (logit lens, steering, self-explanation, widgets) takes
    a ``Binding`` or builds one with ``bind(model, sae)``. Construction checks
    that the layer exists and that the SAE's width equals the model's.
    """

    def __init__(self, model: Any, sae: SAE, hook: HookPoint | str | None = None) -> None:
        from .model import load_model

        self.model = load_model(model)
        self.sae = sae
        hook = hook if hook is None or isinstance(hook, HookPoint) else HookPoint.parse(hook)
        self.hook: HookPoint = hook or sae.hook
        if self.hook is None:
            raise ValueError(
                "the SAE has no hook point: load it with hook='blocks.L.hook_resid_pre' "
                "or pass bind(model, sae, hook=...)"
            )
        self.layout: ModelLayout = model_layout(self.model)
        self.n_layers = len(self.layout.blocks_of(self.model._module))
        if not 0 <= self.hook.layer < self.n_layers:
            raise ValueError(
                f"layer {self.hook.layer} does not exist: this model has {self.n_layers} blocks "
                f"(valid layers 0..{self.n_layers - 1})"
            )
        self.d_model = hidden_size(self.model._module)
        if sae.d_in != self.d_model:
            raise ValueError(
                f"SAE/model width mismatch: the SAE reads vectors of d_in={sae.d_in} but the model's "
                f"residual stream at {self.hook.site}[{self.hook.layer}] has width {self.d_model}; "
                "load the SAE trained for this model"
            )

    # -- identity ---------------------------------------------------------------------
    @property
    def layer(self) -> int:
        return self.hook.layer

    @property
    def site(self) -> str:
        return self.hook.site

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    @property
    def d_sae(self) -> int:
        return self.sae.d_sae

    @property
    def vocab_size(self) -> int:
        return self.unembedding().shape[1]

    def __repr__(self) -> str:
        return (
            f"Binding({self.layout.family} model, {self.n_layers} layers, d_model={self.d_model}; "
            f"{self.sae!r} at {self.site}[{self.layer}])"
        )

    # -- validation ---------------------------------------------------------------------
    def check_feature(self, feature: Any) -> int:
        return self.sae.check_feature(feature)

    def check_features(self, features: Any) -> list[int]:
        """A feature index or an iterable of them, validated, as a list of ints."""
        if isinstance(features, torch.Tensor):
            features = features.reshape(-1).tolist()
        if isinstance(features, Iterable) and not isinstance(features, (str, bytes)):
            return [self.check_feature(f) for f in features]
        return [self.check_feature(features)]

    def check_layer(self, layer: Any, what: str = "layer") -> int:
        return check_index(layer, self.n_layers, what, "this model has {n} blocks")

    # -- weights ------------------------------------------------------------------------
    def direction(self, feature: int) -> torch.Tensor:
        """Decoder row ``W_dec[feature]`` (length d_model)."""
        return self.sae.W_dec[self.check_feature(feature)]

    def unembedding(self) -> torch.Tensor:
        """``W_U`` as d_model x vocab (the LM head's weight, transposed; no copy)."""
        head = self.layout.part(self.model._module, "unembed")
        weight = getattr(head, "weight", None)
        if not isinstance(weight, torch.Tensor) or weight.is_meta:
            raise ValueError(
                "the model's unembedding weights are not loaded (meta device); dispatch the model "
                "first (load_model(..., dispatch=True)) to read W_U locally"
            )
        return weight.T

    def final_norm(self) -> torch.nn.Module:
        return self.layout.part(self.model._module, "final_norm")

    def token_strings(self) -> list[str]:
        """The decoded string of every vocabulary id (cached per tokenizer)."""
        cache = _CACHE.setdefault(self.tokenizer, {})
        if "strings" not in cache:
            vocab = self.vocab_size
            ids = [[i] for i in range(vocab)]
            tok = self.tokenizer
            n = len(tok)
            cache["strings"] = [tok.decode(i, clean_up_tokenization_spaces=False) if i[0] < n else "" for i in ids]
        return cache["strings"]

    # -- residual stream inside an nnsight trace -----------------------------------------
    def resid(self, layer: int | None = None, site: str | None = None) -> torch.Tensor:
        """The residual-stream tensor at ``site[layer]`` (default: the SAE's hook), for use
        inside an nnsight trace; edit it in place (``h[:] += v``) to intervene."""
        return resid(self.model, self.layout, self.layer if layer is None else layer, site or self.site)


def resid(model: Any, layout: ModelLayout, layer: int, site: str) -> torch.Tensor:
    """Residual stream at ``site`` of block ``layer`` inside an nnsight trace."""
    block = layout.blocks_of(model)[layer]
    value = block.input if site == "resid_pre" else block.output
    return value[0] if isinstance(value, tuple) else value


def bind(model: Any, sae: SAE | Binding, hook: HookPoint | str | None = None) -> Binding:
    """Tie ``model`` and ``sae`` (or pass a ``Binding`` through); cached per pair."""
    if isinstance(sae, Binding):
        return sae
    if isinstance(model, Binding):
        return model
    per_model = _CACHE.setdefault(model, {}) if _weakrefable(model) else {}
    key = (id(sae), hook, sae.hook, sae.d_in)
    binding = per_model.get(key)
    if binding is None or binding.sae is not sae:
        binding = Binding(model, sae, hook)
        per_model[key] = binding
    return binding


def _weakrefable(obj: Any) -> bool:
    try:
        weakref.ref(obj)
        return True
    except TypeError:
        return False
