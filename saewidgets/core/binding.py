"""``Binding``: one model, one SAE and the hook point that ties them, validated once."""

from __future__ import annotations

import weakref
from typing import Any, Iterable

import torch

from .layout import ModelLayout
from .model import hidden_size, load_model, model_device, model_layout
from .sae import SITES, SAE, HookPoint, check_index

# Caches sit beside the objects they describe (weak references only): nothing keeps a
# model alive, and nothing extra rides along when nnsight ships a model remotely.
_BINDINGS: "weakref.WeakValueDictionary[tuple, Binding]" = weakref.WeakValueDictionary()
_TOKEN_STRINGS: "weakref.WeakKeyDictionary[Any, list[str]]" = weakref.WeakKeyDictionary()


class ResidualStream:
    """The residual stream of an nnsight model at a hook point; what a ``Binding`` becomes
    inside a remote trace (no SAE weights travel with the request)."""

    def __init__(self, model: Any, layout: ModelLayout, hook: HookPoint, n_layers: int, d_model: int) -> None:
        self.model, self.layout, self.hook, self.n_layers, self.d_model = model, layout, hook, n_layers, d_model

    @property
    def layer(self) -> int:
        return self.hook.layer

    @property
    def site(self) -> str:
        return self.hook.site

    def resid(self, layer: int | None = None, site: str | None = None) -> torch.Tensor:
        """The residual-stream tensor at ``site[layer]`` (default: the SAE's hook), for use
        inside an nnsight trace; edit it in place (``h[:] += v``) to intervene."""
        layer = self.layer if layer is None else check_index(layer, self.n_layers, "layer", "this model has {n} blocks")
        return resid(self.model, self.layout, layer, site or self.site)


class Binding(ResidualStream):
    """An nnsight model, an SAE and the residual-stream point the SAE reads.

    Everything downstream (logit lens, steering, self-explanation, widgets) takes
    a ``Binding`` or builds one with ``bind(model, sae)``. Construction checks
    that the layer exists and that the SAE's width equals the model's.
    """

    def __init__(self, model: Any, sae: SAE, hook: HookPoint | str | None = None) -> None:
        model = load_model(model)
        if hook is not None and not isinstance(hook, HookPoint):
            hook = HookPoint.parse(hook)
        hook = hook or sae.hook
        if hook is None:
            raise ValueError(
                "the SAE has no hook point: load it with hook='blocks.L.hook_resid_pre' "
                "or pass bind(model, sae, hook=...)"
            )
        layout = model_layout(model)
        n_layers = len(layout.blocks_of(model._module))
        if hook.layer >= n_layers:
            raise ValueError(
                f"layer {hook.layer} does not exist: this model has {n_layers} blocks "
                f"(valid layers 0..{n_layers - 1})"
            )
        d_model = hidden_size(model._module, layout)
        if sae.d_in != d_model:
            raise ValueError(
                f"SAE/model width mismatch: the SAE reads vectors of d_in={sae.d_in} but the model's "
                f"residual stream at {hook.site}[{hook.layer}] has width {d_model}; "
                "load the SAE trained for this model"
            )
        super().__init__(model, layout, hook, n_layers, d_model)
        self.sae = sae

    def __reduce__(self) -> tuple:
        # Pickled (as nnsight does for remote=...), a Binding travels as its light residual
        # stream view: the model by reference, no SAE weights, no caches.
        return (ResidualStream, (self.model, self.layout, self.hook, self.n_layers, self.d_model))

    # -- identity ---------------------------------------------------------------------
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
        return self.layout.part(self.model._module, "unembed").weight.shape[0]

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
    def direction(self, feature: int | torch.Tensor) -> torch.Tensor:
        """Decoder row ``W_dec[feature]`` (length d_model); a raw direction vector of
        length d_model passes through (as a float tensor on the SAE's device)."""
        if isinstance(feature, torch.Tensor) and feature.is_floating_point():
            if feature.shape != (self.d_model,):
                raise ValueError(
                    f"a direction must be a vector of length d_model={self.d_model}, got shape {tuple(feature.shape)}"
                )
            return feature.to(self.sae.W_dec)
        return self.sae.W_dec[self.check_feature(feature)]

    def unembedding(self) -> torch.Tensor:
        """``W_U`` as d_model x vocab (the LM head's weight, transposed; no copy)."""
        weight = self.layout.part(self.model._module, "unembed").weight
        if weight.is_meta:
            raise ValueError(
                "the model's weights are not loaded yet (meta device): load it with "
                "load_model(..., dispatch=True), or run one trace first, to read W_U locally"
            )
        return weight.T

    def final_norm(self) -> torch.nn.Module:
        return self.layout.part(self.model._module, "final_norm")

    def token_strings(self) -> list[str]:
        """The decoded string of every vocabulary id ("" for ids the tokenizer lacks); cached."""
        tok = self.tokenizer
        strings = _TOKEN_STRINGS.get(tok)
        if strings is None or len(strings) != self.vocab_size:
            n = min(len(tok), self.vocab_size)
            strings = tok.batch_decode([[i] for i in range(n)], clean_up_tokenization_spaces=False)
            strings += [""] * (self.vocab_size - n)
            _TOKEN_STRINGS[tok] = strings
        return strings


def resid(model: Any, layout: ModelLayout, layer: int, site: str) -> torch.Tensor:
    """Residual stream at ``site`` of block ``layer`` inside an nnsight trace."""
    if site not in SITES:
        raise ValueError(f"unknown residual-stream site {site!r}; use one of {SITES}")
    block = layout.blocks_of(model)[layer]
    value = block.input if site == "resid_pre" else block.output
    return value[0] if isinstance(value, tuple) else value


def bind(model: Any, sae: Any = None, hook: HookPoint | str | None = None) -> Binding:
    """Tie ``model`` and ``sae``; the same ``Binding`` comes back for the same pair while
    it is in use. ``model`` may be anything ``load_model`` takes, ``sae`` anything
    ``load_sae`` takes. A ``Binding`` passes through (as ``model`` with no ``sae`` and
    no ``hook``, or as ``sae``); ``bind(binding, other_sae)`` rebinds its model."""
    if isinstance(sae, Binding):
        return sae
    if isinstance(model, Binding):
        if sae is None and hook is None:
            return model
        sae, model = sae if sae is not None else model.sae, model.model
    if sae is None:
        raise ValueError("bind(model, sae) needs an SAE (an sw.SAE, or anything sw.load_sae takes)")
    if not isinstance(sae, SAE):
        from .sae_loading import load_sae

        sae = load_sae(sae)
    model = load_model(model)
    key = (id(model), id(sae), hook, sae.hook, sae.d_in)
    binding = _BINDINGS.get(key)
    if binding is None or binding.model is not model or binding.sae is not sae:
        binding = _BINDINGS[key] = Binding(model, sae, hook)
    return binding
