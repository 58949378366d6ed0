"""A sparse autoencoder as a torch module, in the SAELens conventions."""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass

import torch
from torch import nn

ARCHITECTURES = ("standard", "jumprelu", "topk", "gated")
SITES = ("resid_pre", "resid_post")


@dataclass(frozen=True)
class HookPoint:
    """Where an SAE reads the residual stream: ``site`` of block ``layer``.

    ``resid_pre`` is the input of block ``layer``; ``resid_post`` its output.
    ``name`` keeps the original hook name (e.g. ``blocks.8.hook_resid_pre``).
    """

    layer: int
    site: str = "resid_pre"
    name: str = ""

    def __post_init__(self) -> None:
        if self.site not in SITES:
            raise ValueError(f"unsupported hook site {self.site!r}; saewidgets supports {SITES}")
        if not isinstance(self.layer, int) or self.layer < 0:
            raise ValueError(f"hook layer must be a non-negative integer, got {self.layer!r}")

    @classmethod
    def parse(cls, name: str) -> "HookPoint":
        """Parse SAELens (``blocks.8.hook_resid_pre``), Gemma Scope (``layer_12/...``) or
        module-style (``model.layers.3``, meaning its output) hook names."""
        text = str(name)
        match = re.search(r"blocks\.(\d+)\.hook_(resid_pre|resid_post|resid_mid|mlp_out|attn_out)\b", text)
        if match:
            site = match.group(2)
            if site not in SITES:
                raise ValueError(
                    f"hook {text!r} reads {site}; saewidgets supports residual-stream SAEs "
                    f"({', '.join(SITES)}) only"
                )
            return cls(int(match.group(1)), site, text)
        match = re.search(r"(?:^|/)layer_(\d+)(?:/|$)", text)
        if match:
            return cls(int(match.group(1)), "resid_post", text)
        match = re.search(r"(?:layers|\.h|blocks)\.(\d+)(?:\.(input|output))?$", text)
        if match:
            site = "resid_pre" if match.group(2) == "input" else "resid_post"
            return cls(int(match.group(1)), site, text)
        raise ValueError(
            f"cannot read a layer and site from hook name {text!r}; use a SAELens name such as "
            "'blocks.8.hook_resid_pre' / 'blocks.8.hook_resid_post', or pass hook=HookPoint(layer, site)"
        )


class SAE(nn.Module):
    """A sparse autoencoder on the residual stream.

    ``W_enc`` is d_in x d_sae, ``W_dec`` d_sae x d_in. ``encode`` follows the
    ``architecture`` (standard ReLU, JumpReLU with ``threshold``, TopK with ``k``,
    gated with ``b_gate``/``r_mag``/``b_mag``); ``decode`` is ``a @ W_dec + b_dec``.
    With ``apply_b_dec_to_input`` the input is centred by ``b_dec`` before encoding.
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
        normalize_activations: str = "none",
        metadata: dict | None = None,
    ) -> None:
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f"unknown SAE architecture {architecture!r}; expected one of {ARCHITECTURES}")
        if W_enc.ndim != 2 or W_dec.ndim != 2 or W_enc.shape != W_dec.shape[::-1]:
            raise ValueError(
                f"W_enc must be d_in x d_sae and W_dec d_sae x d_in; got W_enc {tuple(W_enc.shape)} "
                f"and W_dec {tuple(W_dec.shape)}"
            )
        if normalize_activations not in ("none", None, "constant_norm_rescale"):
            raise ValueError(
                f"normalize_activations={normalize_activations!r} is not supported: saewidgets "
                "handles 'none' and 'constant_norm_rescale'. Fold the normalisation into the "
                "weights (SAELens: sae.fold_activation_norm_scaling_factor(...)) and save again."
            )
        d_in, d_sae = W_enc.shape
        self.architecture = architecture
        self.apply_b_dec_to_input = bool(apply_b_dec_to_input)
        self.normalize_activations = normalize_activations or "none"
        self.hook = hook if isinstance(hook, HookPoint) or hook is None else HookPoint.parse(hook)
        self.metadata = dict(metadata or {})
        zeros = W_enc.new_zeros
        self.W_enc = nn.Parameter(W_enc.detach().clone(), requires_grad=False)
        self.W_dec = nn.Parameter(W_dec.detach().clone(), requires_grad=False)
        self.b_enc = nn.Parameter(_vector(b_enc, d_sae, "b_enc", zeros), requires_grad=False)
        self.b_dec = nn.Parameter(_vector(b_dec, d_in, "b_dec", zeros), requires_grad=False)
        self.k = None
        if architecture == "jumprelu":
            if threshold is None:
                raise ValueError("a jumprelu SAE needs a threshold tensor of length d_sae")
            self.threshold = nn.Parameter(_vector(threshold, d_sae, "threshold", zeros), requires_grad=False)
        elif architecture == "topk":
            if k is None or int(k) < 1 or int(k) > d_sae:
                raise ValueError(f"a topk SAE needs k between 1 and d_sae={d_sae}, got k={k!r}")
            self.k = int(k)
        elif architecture == "gated":
            if b_gate is None or r_mag is None or b_mag is None:
                raise ValueError("a gated SAE needs b_gate, r_mag and b_mag tensors of length d_sae")
            self.b_gate = nn.Parameter(_vector(b_gate, d_sae, "b_gate", zeros), requires_grad=False)
            self.r_mag = nn.Parameter(_vector(r_mag, d_sae, "r_mag", zeros), requires_grad=False)
            self.b_mag = nn.Parameter(_vector(b_mag, d_sae, "b_mag", zeros), requires_grad=False)

    @property
    def d_in(self) -> int:
        return self.W_enc.shape[0]

    @property
    def d_sae(self) -> int:
        return self.W_enc.shape[1]

    @property
    def layer(self) -> int | None:
        return None if self.hook is None else self.hook.layer

    def __repr__(self) -> str:
        hook = (self.hook.name or f"{self.hook.site}[{self.hook.layer}]") if self.hook else "no hook"
        return f"SAE({self.architecture}, d_in={self.d_in}, d_sae={self.d_sae}, hook={hook!r})"

    def _scale(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalize_activations == "constant_norm_rescale":
            return (self.d_in**0.5) / x.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        return x.new_ones(())

    def encode_pre(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-activations ``(x - b_dec?) @ W_enc + b_enc`` (gated: the gate's pre-activation)."""
        x = x.to(self.W_enc.dtype) * self._scale(x)
        if self.apply_b_dec_to_input:
            x = x - self.b_dec
        bias = self.b_gate if self.architecture == "gated" else self.b_enc
        return x @ self.W_enc + bias

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Feature activations for residual vectors ``x`` (..., d_in) -> (..., d_sae)."""
        pre = self.encode_pre(x)
        if self.architecture == "standard":
            return torch.relu(pre)
        if self.architecture == "jumprelu":
            return torch.relu(pre) * (pre > self.threshold)
        if self.architecture == "topk":
            values, indices = pre.topk(self.k, dim=-1)
            return torch.zeros_like(pre).scatter(-1, indices, torch.relu(values))
        # gated: the gate decides which features fire, the magnitude path how strongly.
        x_in = x.to(self.W_enc.dtype) * self._scale(x)
        if self.apply_b_dec_to_input:
            x_in = x_in - self.b_dec
        magnitude = torch.relu(x_in @ (self.W_enc * self.r_mag.exp()) + self.b_mag)
        return (pre > 0).to(magnitude.dtype) * magnitude

    def decode(self, acts: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        """Reconstruction ``acts @ W_dec + b_dec`` (divided back by the input scale if rescaled)."""
        out = acts.to(self.W_dec.dtype) @ self.W_dec + self.b_dec
        return out if scale is None else out / scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``x`` through the dictionary."""
        scale = self._scale(x) if self.normalize_activations != "none" else None
        return self.decode(self.encode(x), scale)

    def check_feature(self, feature: int) -> int:
        """Return ``feature`` as an int, or raise a ValueError naming the valid range."""
        return check_index(feature, self.d_sae, "feature", "this SAE has {n} features")

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Every weight tensor by its SAELens name."""
        return {name: p.detach() for name, p in self.named_parameters()}


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


def _vector(value, length: int, name: str, zeros) -> torch.Tensor:
    tensor = torch.as_tensor(value if value is not None else zeros(length)).detach().clone()
    if tensor.numel() != length:
        raise ValueError(f"{name} must have {length} values, got shape {tuple(tensor.shape)}")
    return tensor.reshape(-1).to(zeros(0).dtype)
