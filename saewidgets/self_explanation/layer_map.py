"""A linear map between two residual-stream layers, to inject a late-layer direction early.

Self-explanation injects ``scale * d`` at an early layer, but an SAE at a later layer has
its decoder rows in that later layer's basis. In a deep model the basis drifts slowly and
the direction can be used as is (Kharlapenko & neverix inject Gemma-2B directions at layer
2); in a shallow one it does not carry over. Patchscopes (Ghandeharioun et al. 2024) map
representations between layers with a learned affine map; this module fits its linear
part by ridge regression on the model's own residuals over some text:
``A = argmin ||(X - mean X) A - (Y - mean Y)||^2 + reg ||A||^2``, with X the residuals at
the SAE's hook and Y those entering the injection layer, at the same tokens. A direction
``d`` maps to ``d @ A``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ..core.binding import Binding, bind
from ..engine import Read, Row, trace


@dataclass(frozen=True)
class LayerMap:
    """``matrix`` (d_model x d_model) maps a direction at residual point ``source`` to one
    entering block ``target``. Residual points count block inputs: point ``l`` is
    resid_pre[l] (= resid_post[l - 1]); point ``n_layers`` is the output of the last block.
    ``r2`` is the fraction of variance of the target residuals the map explains."""

    matrix: torch.Tensor
    source: int
    target: int
    r2: float
    n_tokens: int

    def apply(self, directions: torch.Tensor) -> torch.Tensor:
        """Map rows of ``directions``, keeping each row's norm (so scales keep their meaning)."""
        mapped = directions.double() @ self.matrix.double()
        mapped = mapped / mapped.norm(dim=-1, keepdim=True).clamp_min(1e-30)
        return (mapped * directions.double().norm(dim=-1, keepdim=True)).to(directions.dtype)

    def digest(self) -> str:
        data = self.matrix.detach().to("cpu", torch.float64).contiguous().numpy().tobytes()
        return hashlib.sha256(data).hexdigest()[:16] + f"-{self.source}-{self.target}"

    def save(self, path: Any) -> None:
        """Write the map as safetensors (the matrix; source, target, r2 and n_tokens as metadata)."""
        from safetensors.torch import save_file

        meta = {"source": str(self.source), "target": str(self.target), "r2": repr(float(self.r2)),
                "n_tokens": str(self.n_tokens), "format": "saewidgets.LayerMap/1"}
        save_file({"matrix": self.matrix.detach().float().cpu().contiguous()}, str(path), metadata=meta)

    @classmethod
    def load(cls, path: Any) -> "LayerMap":
        """Read a map written by ``save`` (safetensors: no pickle)."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            if meta.get("format") != "saewidgets.LayerMap/1" or "matrix" not in handle.keys():
                raise ValueError(f"{path} is not a saewidgets LayerMap file (LayerMap.save writes one)")
            matrix = handle.get_tensor("matrix")
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or not torch.isfinite(matrix).all():
            raise ValueError(f"{path}: the map's matrix must be a finite square matrix, got shape {tuple(matrix.shape)}")
        try:
            return cls(matrix, int(meta["source"]), int(meta["target"]), float(meta["r2"]), int(meta["n_tokens"]))
        except (KeyError, ValueError) as error:
            raise ValueError(f"{path}: damaged LayerMap metadata ({error})") from None


def residual_point(binding: Binding) -> int:
    """The residual point an SAE reads: its layer for resid_pre, the next for resid_post."""
    return binding.layer + (1 if binding.site == "resid_post" else 0)


def fit_layer_map(
    model: Any,
    sae: Any,
    texts: Sequence[str],
    layer: int,
    ridge: float = 1e-2,
    max_length: int = 128,
    batch_size: int = 32,
    remote: Any = False,
    progress: bool = True,
) -> LayerMap:
    """Fit the map from the SAE's hook to the input of block ``layer`` on ``texts``.

    Every token but each text's first (whose residual is an outlier in many models) is a
    sample. ``ridge`` is relative to the mean variance of the source residuals. A few
    thousand tokens are plenty for a small model; use more than d_model tokens.
    """
    from tqdm.auto import tqdm

    binding = bind(model, sae)
    source = residual_point(binding)
    layer = binding.check_layer(layer)
    if layer >= source:
        raise ValueError(f"the injection layer {layer} is not before the SAE's residual point {source}: no map is needed")
    if isinstance(texts, str) or not texts or not all(isinstance(t, str) and t for t in texts):
        raise ValueError("texts must be a non-empty list of non-empty strings")
    tokenizer = binding.tokenizer
    if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 2:
        raise ValueError(f"max_length must be a whole number of tokens >= 2, got {max_length!r}")
    xs, ys = [], []
    reads = [Read("y", layer, positions="all"), Read("x", source, positions="all")]
    for start in tqdm(range(0, len(texts), batch_size), desc="fit layer map", disable=not progress):
        ids = [row[:max_length] for row in tokenizer(list(texts[start:start + batch_size]))["input_ids"]]
        run = trace(binding.model, [Row(row) for row in ids if row], reads, remote=remote)
        mask = run.mask.bool().clone()
        first = mask.float().argmax(dim=1)  # left padding: the first real token
        mask[torch.arange(len(mask)), first] = False  # its residual is an outlier in many models
        xs.append(run.reads["x"].detach().double().cpu()[mask])
        ys.append(run.reads["y"].detach().double().cpu()[mask])
    X, Y = torch.cat(xs), torch.cat(ys)
    if len(X) <= X.shape[1]:
        raise ValueError(f"only {len(X)} tokens for a {X.shape[1]}-wide map: give more text")
    X, Y = X - X.mean(0), Y - Y.mean(0)
    cov = X.T @ X / len(X)
    reg = ridge * torch.trace(cov) / cov.shape[0]
    matrix = torch.linalg.solve(cov + reg * torch.eye(cov.shape[0], dtype=cov.dtype), X.T @ Y / len(X))
    r2 = 1 - float(((X @ matrix - Y) ** 2).sum() / (Y**2).sum().clamp_min(1e-30))
    return LayerMap(matrix.float(), source, layer, r2, len(X))
