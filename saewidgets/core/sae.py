"""A sparse autoencoder as a torch module, in the SAELens conventions."""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

ARCHITECTURES = ("standard", "jumprelu", "topk", "gated")
SITES = ("resid_pre", "resid_post")
NORMALIZATIONS = ("none", "constant_norm_rescale", "layer_norm")


@dataclass(frozen=True)
class HookPoint:
    """Where an SAE reads the residual stream: ``site`` of block ``layer``.

    ``resid_pre`` is the input of block ``layer``; ``resid_post`` its output.
    ``name`` keeps the original hook name (e.g. ``blocks.8.hook_resid_pre``); it is a
    label only: two hook points are equal when layer and site are.
    """

    layer: int
    site: str = "resid_pre"
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.site not in SITES:
            raise ValueError(f"unsupported hook site {self.site!r}; saewidgets supports {SITES}")
        if isinstance(self.layer, bool) or not isinstance(self.layer, int) or self.layer < 0:
            raise ValueError(f"hook layer must be a non-negative integer, got {self.layer!r}")

    @property
    def saelens_name(self) -> str:
        """The SAELens / TransformerLens spelling, ``blocks.L.hook_SITE``."""
        return f"blocks.{self.layer}.hook_{self.site}"

    @classmethod
    def parse(cls, name: str) -> "HookPoint":
        """Parse SAELens (``blocks.8.hook_resid_pre``), Gemma Scope (``layer_12/...``) or
        module-style (``model.layers.3``, meaning its output) hook names."""
        text = str(name)
        match = re.search(r"(?:layers|\.h|blocks)\.(\d+)(?:\.(input|output))?$", text)
        if match:
            site = "resid_pre" if match.group(2) == "input" else "resid_post"
            return cls(int(match.group(1)), site, text)
        match = re.search(r"blocks\.(\d+)\.(\w+(?:\.\w+)*)", text)
        if match:
            site = match.group(2).removeprefix("hook_")
            if site not in SITES:
                raise ValueError(
                    f"hook {text!r} reads {match.group(2)}; saewidgets supports residual-stream SAEs "
                    f"({', '.join(SITES)}) only"
                )
            return cls(int(match.group(1)), site, text)
        match = re.search(r"(?:^|/)layer_(\d+)(?:/|$)", text)
        if match:
            return cls(int(match.group(1)), "resid_post", text)
        raise ValueError(
            f"cannot read a layer and site from hook name {text!r}; use a SAELens name such as "
            "'blocks.8.hook_resid_pre' / 'blocks.8.hook_resid_post', or pass hook=HookPoint(layer, site)"
        )


class SAE(nn.Module):
    """A sparse autoencoder on the residual stream, computing what SAELens computes.

    ``W_enc`` is d_in x d_sae, ``W_dec`` d_sae x d_in. ``encode`` follows the
    ``architecture``: standard ``relu(pre)``; JumpReLU ``relu(pre) * (pre > threshold)``;
    TopK: the ``k`` largest pre-activations, ReLU'd, the rest zero; gated
    ``(x' @ W_enc + b_gate > 0) * relu(x' @ (W_enc * exp(r_mag)) + b_mag)``; where
    ``pre = x' @ W_enc + b_enc`` and ``x' = x - b_dec`` with ``apply_b_dec_to_input``
    (else ``x``). ``decode`` is ``acts @ W_dec + b_dec``. ``normalize_activations``
    (``constant_norm_rescale`` or ``layer_norm``) normalises ``x`` before encoding;
    ``forward`` undoes it on the reconstruction.
    """

    def __init__(
        self,
        W_enc: torch.Tensor,
        W_dec: torch.Tensor,
        b_enc: torch.Tensor | None = None,
        b_dec: torch.Tensor | None = None,
        *,
        architecture: str = "standard",
        hook: HookPoint | str | None = None,
        apply_b_dec_to_input: bool = False,
        threshold: torch.Tensor | None = None,
        k: int | None = None,
        b_gate: torch.Tensor | None = None,
        r_mag: torch.Tensor | None = None,
        b_mag: torch.Tensor | None = None,
        normalize_activations: str | None = "none",
        metadata: dict | None = None,
    ) -> None:
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f"unknown SAE architecture {architecture!r}; expected one of {ARCHITECTURES}")
        W_enc, W_dec = torch.as_tensor(W_enc), torch.as_tensor(W_dec)
        if W_enc.ndim != 2 or W_dec.ndim != 2 or W_enc.shape != W_dec.shape[::-1]:
            raise ValueError(
                f"W_enc must be d_in x d_sae and W_dec d_sae x d_in; got W_enc {tuple(W_enc.shape)} "
                f"and W_dec {tuple(W_dec.shape)}"
            )
        normalize_activations = normalize_activations or "none"
        if normalize_activations == "expected_average_only_in":
            raise ValueError(
                "normalize_activations='expected_average_only_in' means the weights still expect inputs "
                "scaled by a dataset-wide factor that is not stored with them. Fold it in first "
                "(SAELens: sae.fold_activation_norm_scaling_factor(factor); or by hand: W_enc *= factor, "
                "W_dec /= factor, b_dec /= factor) and load with normalize_activations='none'."
            )
        if normalize_activations not in NORMALIZATIONS:
            raise ValueError(
                f"normalize_activations={normalize_activations!r} is not supported; expected one of {NORMALIZATIONS}"
            )
        d_in, d_sae = W_enc.shape
        self.architecture = architecture
        self.apply_b_dec_to_input = bool(apply_b_dec_to_input)
        self.normalize_activations = normalize_activations
        self.hook = hook if isinstance(hook, HookPoint) or hook is None else HookPoint.parse(hook)
        self.metadata = dict(metadata or {})
        like: dict[str, Any] = dict(dtype=W_enc.dtype if W_enc.is_floating_point() else torch.float32, device=W_enc.device)
        weight = lambda value, length, name: _vector(value, length, name, like)  # noqa: E731
        self.W_enc = nn.Parameter(W_enc.detach().to(**like).clone(), requires_grad=False)
        self.W_dec = nn.Parameter(W_dec.detach().to(**like).clone(), requires_grad=False)
        self.b_enc = nn.Parameter(weight(b_enc, d_sae, "b_enc"), requires_grad=False)
        self.b_dec = nn.Parameter(weight(b_dec, d_in, "b_dec"), requires_grad=False)
        self.k: int | None = None
        # Set for the architectures that use them (typed Any: nn.Module attributes, None otherwise).
        self.threshold: Any = None
        self.b_gate: Any = None
        self.r_mag: Any = None
        self.b_mag: Any = None
        if architecture == "jumprelu":
            if threshold is None:
                raise ValueError("a jumprelu SAE needs a threshold tensor of length d_sae")
            self.threshold = nn.Parameter(weight(threshold, d_sae, "threshold"), requires_grad=False)
        elif architecture == "topk":
            if k is None or isinstance(k, bool) or not 1 <= int(k) <= d_sae:
                raise ValueError(f"a topk SAE needs an integer k between 1 and d_sae={d_sae}, got k={k!r}")
            self.k = int(k)
        elif architecture == "gated":
            if b_gate is None or r_mag is None or b_mag is None:
                raise ValueError("a gated SAE needs b_gate, r_mag and b_mag tensors of length d_sae")
            self.b_gate = nn.Parameter(weight(b_gate, d_sae, "b_gate"), requires_grad=False)
            self.r_mag = nn.Parameter(weight(r_mag, d_sae, "r_mag"), requires_grad=False)
            self.b_mag = nn.Parameter(weight(b_mag, d_sae, "b_mag"), requires_grad=False)

    @property
    def d_in(self) -> int:
        return self.W_enc.shape[0]

    @property
    def d_sae(self) -> int:
        return self.W_enc.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        return self.W_enc.dtype

    @property
    def device(self) -> torch.device:
        return self.W_enc.device

    @property
    def layer(self) -> int | None:
        return None if self.hook is None else self.hook.layer

    def __repr__(self) -> str:
        hook = (self.hook.name or self.hook.saelens_name) if self.hook else "no hook"
        k = f", k={self.k}" if self.k is not None else ""
        return f"SAE({self.architecture}{k}, d_in={self.d_in}, d_sae={self.d_sae}, hook={hook!r})"

    # -- the computation ----------------------------------------------------------------
    def _normalize(self, x: torch.Tensor) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        """``x`` in the SAE's dtype and normalisation, and the function that undoes it."""
        x = x.to(self.W_enc.dtype)
        if self.normalize_activations == "constant_norm_rescale":
            coeff = self.d_in**0.5 / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            return x * coeff, lambda out: out / coeff
        if self.normalize_activations == "layer_norm":
            mu = x.mean(dim=-1, keepdim=True)
            std = (x - mu).std(dim=-1, keepdim=True)
            return (x - mu) / (std + 1e-5), lambda out: out * std + mu
        return x, lambda out: out

    def _sae_in(self, x: torch.Tensor) -> torch.Tensor:
        x = self._normalize(x)[0]
        return x - self.b_dec if self.apply_b_dec_to_input else x

    def _pre(self, sae_in: torch.Tensor) -> torch.Tensor:
        return sae_in @ self.W_enc + (self.b_gate if self.architecture == "gated" else self.b_enc)

    def _activate(self, sae_in: torch.Tensor) -> torch.Tensor:
        pre = self._pre(sae_in)
        if self.architecture == "standard":
            return torch.relu(pre)
        if self.architecture == "jumprelu":
            return torch.relu(pre) * (pre > self.threshold)
        if self.architecture == "topk":
            values, indices = pre.topk(int(self.k or 0), dim=-1)
            return torch.zeros_like(pre).scatter(-1, indices, torch.relu(values))
        magnitude = torch.relu(sae_in @ (self.W_enc * self.r_mag.exp()) + self.b_mag)
        return (pre > 0).to(magnitude.dtype) * magnitude

    def encode_pre(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-activations ``x' @ W_enc + b_enc`` (gated: the gate's, with ``b_gate``)."""
        return self._pre(self._sae_in(x))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Feature activations for residual vectors ``x`` (..., d_in) -> (..., d_sae)."""
        return self._activate(self._sae_in(x))

    def decode(self, acts: torch.Tensor) -> torch.Tensor:
        """``acts @ W_dec + b_dec`` (in the normalised space when ``normalize_activations`` is set)."""
        return acts.to(self.W_dec.dtype) @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``x`` through the dictionary."""
        x_norm, undo = self._normalize(x)
        sae_in = x_norm - self.b_dec if self.apply_b_dec_to_input else x_norm
        return undo(self.decode(self._activate(sae_in)))

    def check_feature(self, feature: int) -> int:
        """Return ``feature`` as an int, or raise a ValueError naming the valid range."""
        return check_index(feature, self.d_sae, "feature", "this SAE has {n} features")

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Every weight tensor by its SAELens name (gated SAEs have no b_enc in SAELens)."""
        tensors = {name: p.detach() for name, p in self.named_parameters()}
        if self.architecture == "gated":
            tensors.pop("b_enc")
        return tensors


def check_index(value, size: int, what: str, context: str) -> int:
    """``value`` as an int in ``0..size-1``, or a ValueError saying what is valid."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{what} must be an integer index, got {value!r}")
    index = int(value)
    if not 0 <= index < size:
        raise ValueError(
            f"{what} {index} is out of range: {context.format(n=size)} (valid indices 0..{size - 1})"
        )
    return index


def _vector(value, length: int, name: str, like: dict) -> torch.Tensor:
    if value is None:
        return torch.zeros(length, **like)
    tensor = torch.as_tensor(value).detach()
    if tensor.numel() != length:
        raise ValueError(f"{name} must have {length} values, got shape {tuple(tensor.shape)}")
    return tensor.reshape(-1).to(**like).clone()
