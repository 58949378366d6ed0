"""Sparse decompositions of a direction into SAE features: the SAE's encoder, and inference-time
optimisation by gradient pursuit (Smith). Task vectors, MELBO vectors and raw directions are
explained through these; ``saewidgets.tasks`` adds gradient cleanup (which needs the model).

>>> code = sw.decompose(sae, vector, method="ito", l0=8)
>>> code.features          # {feature: weight}, strongest first
>>> code.direction         # an sw.Direction: sum(weight * W_dec[f]) (+ b_dec with include_bias)
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

import torch

from .core.direction import Direction

METHODS = ("encode", "ito")


@dataclass
class SparseCode:
    """A direction written as a sparse set of SAE features with weights.

    ``features``: ``{feature: weight}``, largest weight first; ``l0`` their number; ``method`` how
    they were found; ``reconstruction`` the vector they rebuild (``sum w * W_dec[f]``, plus
    ``b_dec`` when ``include_bias``); ``cosine`` and ``relative_error`` compare it with the target;
    ``nll`` is filled by methods that measure one (``saewidgets.tasks``).
    """

    features: dict[int, float]
    method: str
    reconstruction: torch.Tensor
    target: torch.Tensor
    sae: Any = field(repr=False, default=None)
    include_bias: bool = False
    nll: float | None = None
    extra: dict = field(default_factory=dict, repr=False)

    @property
    def l0(self) -> int:
        return len(self.features)

    @property
    def cosine(self) -> float:
        a, b = self.reconstruction.double(), self.target.double()
        return float(a @ b / (a.norm() * b.norm()).clamp_min(1e-30))

    @property
    def relative_error(self) -> float:
        return float((self.reconstruction - self.target).norm() / self.target.norm().clamp_min(1e-30))

    @property
    def direction(self) -> Direction:
        """The features as an ``sw.Direction`` (the decoder rows with their weights; the bias is not a
        feature, so ``include_bias`` codes carry it as a raw vector part)."""
        out = Direction(name=f"{self.method} code ({self.l0} features)",
                        provenance={"method": self.method, "l0": self.l0})
        for f, w in self.features.items():
            out = out + Direction.feature(self.sae, f, w)
        if self.include_bias:
            out = out + Direction(self.sae.b_dec.detach(), name="b_dec")
        out.name = f"{self.method} code ({self.l0} features)"
        return out

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame({"feature": list(self.features), "weight": list(self.features.values())})


def _target(sae: Any, vector: Any) -> torch.Tensor:
    if isinstance(vector, Direction):
        vector = vector.vector
    tensor = torch.as_tensor(vector).detach().to("cpu", torch.float32)
    if tensor.ndim != 1 or tensor.shape[0] != sae.d_in:
        raise ValueError(f"the vector to decompose must have length d_in={sae.d_in}, got shape {tuple(tensor.shape)}")
    if not torch.isfinite(tensor).all():
        raise ValueError("the vector to decompose contains NaN or infinite values")
    return tensor


def _sorted(index: torch.Tensor, values: torch.Tensor) -> dict[int, float]:
    order = torch.argsort(values.abs(), descending=True)
    return {int(index[i]): float(values[i]) for i in order if float(values[i]) != 0.0}


def decompose(sae: Any, vector: Any, method: str = "ito", *, l0: int = 8, include_bias: bool = False) -> SparseCode:
    """A sparse code of ``vector`` (a d_in tensor or ``sw.Direction``) in ``sae``'s dictionary.

    ``method="encode"``: the SAE's own encoder (what a residual with this value would activate;
    dense and off-distribution for directions that are not residuals). ``method="ito"``:
    gradient pursuit to ``l0`` features (Smith): each step adds the feature most aligned with the
    residual and takes an exact line search along the support's gradient, weights kept >= 0.
    ``include_bias``: decompose ``vector - b_dec`` and rebuild with ``b_dec`` (for a residual
    stream value; leave False for a direction).
    """
    sae = getattr(sae, "sae", sae)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {METHODS} (gradient cleanup: sw.task_features)")
    target = _target(sae, vector)
    W_dec = sae.W_dec.detach().to("cpu", torch.float32)
    b_dec = sae.b_dec.detach().to("cpu", torch.float32)
    if method == "encode":
        with torch.no_grad():
            acts = sae.encode(target.to(sae.W_enc.device, sae.W_enc.dtype)).detach().float().cpu()
        index = acts.nonzero().flatten()
        features = _sorted(index, acts[index])
        recon = acts @ W_dec + (b_dec if include_bias else 0)
        return SparseCode(features, "encode", recon, target, sae, include_bias, extra={"activations": acts})
    if isinstance(l0, bool) or not isinstance(l0, numbers.Integral) or not 1 <= l0 <= sae.d_sae:
        raise ValueError(f"l0 must be a whole number from 1 to d_sae={sae.d_sae}, got {l0!r}")
    x = target - b_dec if include_bias else target
    weights = gradient_pursuit(W_dec, x, int(l0))
    index = weights.nonzero().flatten()
    recon = weights @ W_dec + (b_dec if include_bias else 0)
    return SparseCode(_sorted(index, weights[index]), "ito", recon, target, sae, include_bias)


def gradient_pursuit(D: torch.Tensor, x: torch.Tensor, target_l0: int, refine: int | None = None) -> torch.Tensor:
    """Non-negative gradient pursuit (methods.md section 4): for ``target_l0`` steps,
    ``r = x - D^T w; c = D r; S += argmax c; g = 1_S * c; v = D^T g; step = <v, r> / <v, v>;
    w = max(w + step * g, 0)``. ``D`` is d_sae x d (decoder rows); returns w (d_sae).

    The method's ``target_l0`` steps pick the support but leave its weights approximate (one line
    search per step); ``refine`` more steps of the same update on the fixed support (default
    ``8 * target_l0``) bring them to the non-negative least-squares fit on that support."""
    D64, x64 = D.double(), x.double()
    w = torch.zeros(D.shape[0], dtype=torch.float64)
    support = torch.zeros(D.shape[0], dtype=torch.bool)
    extra = 8 * target_l0 if refine is None else int(refine)
    for step_index in range(target_l0 + extra):
        r = x64 - w @ D64
        c = D64 @ r
        if step_index < target_l0:
            c_masked = torch.where(support, torch.full_like(c, -float("inf")), c)
            best = int(torch.argmax(c_masked))
            if c_masked[best] > 0 or not support.any():
                support[best] = True
        g = torch.where(support, c, torch.zeros_like(c))
        v = g @ D64
        denom = float(v @ v)
        if denom <= 1e-30:
            break  # the residual is orthogonal to the support: nothing left to fit
        step = float(v @ r) / denom
        w = torch.clamp(w + step * g, min=0)
    return w.float()
