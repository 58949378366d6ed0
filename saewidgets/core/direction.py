"""``Direction``: a direction in a model's residual stream, as a value.

An SAE feature (its decoder row), a raw vector (a task vector, a MELBO vector, a probe), or a
weighted sum of them. Every analysis and view that takes a feature takes a Direction too.

>>> d = sw.Direction.feature(sae, 3)                 # W_dec[3]
>>> v = sw.Direction(vector, name="task vector")     # a raw d_model vector
>>> mix = 0.5 * d + v                                 # sums keep their parts
>>> mix.vector                                        # the d_model tensor (float32, CPU)
>>> mix.features                                      # {3: 0.5}
"""

from __future__ import annotations

import hashlib
import math
import numbers
from typing import Any, Mapping

import numpy as np
import torch


def _as_vector(value: Any, what: str = "a direction") -> torch.Tensor:
    try:
        tensor = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{what} must be a vector of numbers (a 1-D tensor or array), got {type(value).__name__}") from None
    if tensor.ndim != 1 or tensor.numel() == 0:
        raise ValueError(f"{what} must be a 1-D vector of length d_model, got shape {tuple(tensor.shape)}")
    if not (tensor.is_floating_point() or tensor.dtype in (torch.int32, torch.int64)):
        raise ValueError(f"{what} must hold numbers, got dtype {tensor.dtype}")
    tensor = tensor.detach().to("cpu", torch.float32)
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    return tensor


def _weight(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"the weight of {what} must be a number, got {value!r}")
    weight = float(value)
    if not math.isfinite(weight):
        raise ValueError(f"the weight of {what} is {weight}: give a finite number")
    return weight


class Direction:
    """A direction in the residual stream: SAE features and raw vectors with weights.

    ``Direction(vector, name=...)`` makes a raw direction; ``Direction.feature(sae, f)`` an SAE
    feature; ``+``, ``-``, ``*`` and ``/`` by numbers combine them. ``.vector`` is the d_model
    tensor, ``.features`` the ``{feature: weight}`` part, ``.feature`` the index when the
    direction is exactly one feature with weight 1. ``name`` labels it in views; ``provenance``
    (a dict) says where it came from (e.g. ``{"method": "task_vector", "layer": 2}``).
    """

    __slots__ = ("_features", "_vectors", "_sae", "name", "provenance", "layer", "site")

    def __init__(self, vector: Any = None, *, name: str | None = None, provenance: Mapping[str, Any] | None = None,
                 layer: int | None = None, site: str | None = None) -> None:
        self._features: dict[int, float] = {}
        self._vectors: list[tuple[torch.Tensor, float]] = []
        self._sae: Any = None
        if vector is not None:
            if isinstance(vector, Direction):
                raise ValueError("Direction(Direction) is not needed: use the direction itself (or .scaled())")
            self._vectors.append((_as_vector(vector), 1.0))
        self.name = str(name) if name is not None else ("raw vector" if vector is not None else "zero")
        self.provenance = dict(provenance or {})
        self.layer = layer
        self.site = site

    # -- constructors ---------------------------------------------------------------------
    @classmethod
    def feature(cls, sae: Any, index: Any, weight: float = 1.0, *, name: str | None = None) -> "Direction":
        """SAE feature ``index`` of ``sae`` (an ``sw.SAE`` or a ``Binding``): ``weight * W_dec[index]``."""
        sae = getattr(sae, "sae", sae)
        if not hasattr(sae, "W_dec") or not hasattr(sae, "check_feature"):
            raise ValueError(f"Direction.feature needs an sw.SAE (or a Binding), got {type(sae).__name__}")
        index = sae.check_feature(index)
        out = cls(name=name or f"feature {index}", provenance={"method": "sae_feature", "feature": index})
        out._features = {index: _weight(weight, f"feature {index}")}
        out._sae = sae
        hook = getattr(sae, "hook", None)
        if hook is not None:
            out.layer, out.site = hook.layer, hook.site
        return out

    @classmethod
    def of(cls, value: Any, sae: Any = None, *, name: str | None = None) -> "Direction":
        """``value`` as a Direction: a Direction (as is), a feature index (needs ``sae``) or a vector."""
        if isinstance(value, Direction):
            return value
        if isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, bool):
            if sae is None:
                raise ValueError(f"feature {int(value)} needs an SAE: pass sae=..., or give a vector instead")
            return cls.feature(sae, int(value), name=name)
        if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
            return cls.of(int(value), sae, name=name)
        return cls(value, name=name)

    # -- what it is -------------------------------------------------------------------------
    @property
    def features(self) -> dict[int, float]:
        """The SAE-feature part, ``{feature: weight}``."""
        return dict(self._features)

    @property
    def vectors(self) -> list[tuple[torch.Tensor, float]]:
        """The raw-vector part, ``[(vector, weight), ...]``."""
        return list(self._vectors)

    @property
    def sae(self) -> Any:
        """The SAE whose features this direction uses (None for raw vectors only)."""
        return self._sae

    @property
    def feature_index(self) -> int | None:
        """The feature index when this is exactly one SAE feature with weight 1, else None."""
        if not self._vectors and len(self._features) == 1:
            (f, w), = self._features.items()
            return f if w == 1.0 else None
        return None

    @property
    def is_feature(self) -> bool:
        return self.feature_index is not None

    @property
    def d_model(self) -> int | None:
        if self._vectors:
            return int(self._vectors[0][0].shape[0])
        return None if self._sae is None else int(self._sae.d_in)

    @property
    def vector(self) -> torch.Tensor:
        """The direction as one d_model tensor (float32, CPU): the weighted sum of its parts."""
        d = self.d_model
        if d is None:
            raise ValueError("this direction is empty: it has no features and no vectors")
        total = torch.zeros(d, dtype=torch.float64)
        if self._features:
            W = self._sae.W_dec.detach()
            index = torch.tensor(list(self._features))
            weights = torch.tensor(list(self._features.values()), dtype=torch.float64)
            total += weights @ W[index.to(W.device)].to("cpu", torch.float64)
        for vec, w in self._vectors:
            total += w * vec.double()
        return total.float()

    def norm(self) -> float:
        return float(self.vector.norm())

    def digest(self) -> str:
        """A short hash of the vector (for cache keys)."""
        return hashlib.sha256(self.vector.numpy().tobytes()).hexdigest()[:16]

    def check_width(self, d_model: int, where: str = "the residual stream") -> "Direction":
        """``self``, or a ValueError when its length is not ``d_model``."""
        if self.d_model != d_model:
            raise ValueError(f"the direction {self.name!r} has length {self.d_model}, but {where} has width {d_model}: "
                             f"give a vector of length {d_model}")
        return self

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary: name, provenance, features, number of raw vectors, norm."""
        return {"name": self.name, "provenance": _jsonable(self.provenance),
                "features": [[f, w] for f, w in self._features.items()], "vectors": len(self._vectors),
                "norm": self.norm() if self.d_model is not None else 0.0, "feature": self.feature_index,
                "layer": self.layer, "site": self.site}

    # -- arithmetic -------------------------------------------------------------------------
    def _copy(self, name: str) -> "Direction":
        out = Direction(name=name, provenance=self.provenance, layer=self.layer, site=self.site)
        out._features, out._vectors, out._sae = dict(self._features), list(self._vectors), self._sae
        return out

    def scaled(self, weight: float, name: str | None = None) -> "Direction":
        w = _weight(weight, self.name)
        out = self._copy(name or (self.name if w == 1 else f"{w:g} × {self.name}"))
        out._features = {f: v * w for f, v in self._features.items()}
        out._vectors = [(vec, v * w) for vec, v in self._vectors]
        return out

    def __mul__(self, weight: Any) -> "Direction":
        if isinstance(weight, Direction) or not isinstance(weight, numbers.Real):
            return NotImplemented
        return self.scaled(float(weight))

    __rmul__ = __mul__

    def __truediv__(self, weight: Any) -> "Direction":
        if not isinstance(weight, numbers.Real) or isinstance(weight, bool) or weight == 0:
            raise ValueError(f"a direction can be divided by a non-zero number, got {weight!r}")
        return self.scaled(1.0 / float(weight))

    def __neg__(self) -> "Direction":
        return self.scaled(-1.0, name=f"−{self.name}")

    def __add__(self, other: Any) -> "Direction":
        if isinstance(other, numbers.Real) and other == 0:
            return self  # sum([...]) starts at 0
        if not isinstance(other, Direction):
            return NotImplemented
        if self._sae is not None and other._sae is not None and self._sae is not other._sae:
            raise ValueError("these directions use features of two different SAEs; add their .vector instead")
        width, other_width = self.d_model, other.d_model
        if width is not None and other_width is not None and width != other_width:
            raise ValueError(f"cannot add directions of lengths {width} and {other_width}")
        out = self._copy(f"{self.name} + {other.name}")
        out.provenance = {"method": "sum", "parts": [_jsonable(self.provenance), _jsonable(other.provenance)]}
        for f, w in other._features.items():
            out._features[f] = out._features.get(f, 0.0) + w
        out._vectors += other._vectors
        out._sae = self._sae if self._sae is not None else other._sae
        if out.layer != other.layer or out.site != other.site:
            if out.layer is None:
                out.layer, out.site = other.layer, other.site
            elif other.layer is not None:
                out.layer, out.site = None, None  # parts at different points: no single point
        return out

    __radd__ = __add__

    def __sub__(self, other: Any) -> "Direction":
        if not isinstance(other, Direction):
            return NotImplemented
        return self + (-other)

    def __repr__(self) -> str:
        parts = [f"{w:g}·f{f}" for f, w in self._features.items()] + [f"{w:g}·vector" for _, w in self._vectors]
        where = f", {self.site}[{self.layer}]" if self.layer is not None else ""
        return f"Direction({self.name!r}: {' + '.join(parts) or '0'}{where})"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value) if math.isfinite(value) else None
    return str(value)
