"""``MelboSettings``: what a MELBO run's vectors depend on, checked once (clear ValueErrors)."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass
from typing import Any

BETAS = (0.9, 0.98)  # AdamW betas of the public code (amsgrad, no weight decay)
MAX_STEPS = 100_000


def check_int(value: Any, name: str, lo: int, hi: int, fix: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be a whole number from {lo} to {hi}, got {value!r}{fix}")
    if not lo <= int(value) <= hi:
        raise ValueError(f"{name} must be from {lo} to {hi}, got {int(value)}{fix}")
    return int(value)


def check_positive(value: Any, name: str, fix: str = "") -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)) \
            or float(value) <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}{fix}")
    return float(value)


@dataclass(frozen=True)
class MelboSettings:
    """The settings that determine a run's vectors (not how many, nor how they are batched).

    ``source_layer``: vectors are added to the residual entering this block, at every position.
    ``target_layer``: the residual entering this block is what they move (``n_layers``: the
    output of the last block). ``radius`` R: every vector's norm. ``steps``: AdamW steps per
    vector at learning rate ``lr``. ``p``, ``q``: the objective's exponents,
    ``sum_prompts (sum_t ||Z_t(theta) - Z_t(0)||^p)^(1/q)``. ``seed``: the starting points.
    ``prepend_bos``: prompts start with the BOS token.
    """

    source_layer: int
    target_layer: int
    radius: float
    steps: int = 300
    p: float = 2.0
    q: float = 2.0
    lr: float = 1e-3
    seed: int = 0
    prepend_bos: bool = False
    betas: tuple[float, float] = BETAS

    @classmethod
    def checked(cls, n_layers: int, *, source_layer: Any, target_layer: Any, radius: Any, steps: Any = 300,
                p: Any = 2.0, q: Any = None, lr: Any = 1e-3, seed: Any = 0, prepend_bos: Any = False) -> "MelboSettings":
        """Settings for a model of ``n_layers`` blocks, each value checked (a ValueError says the fix)."""
        source = check_int(source_layer, "source_layer", 0, n_layers - 1,
                           f" (this model has {n_layers} blocks; the vector is added to the input of one)")
        if isinstance(target_layer, bool) or not isinstance(target_layer, numbers.Integral) or \
                not source < int(target_layer) <= n_layers:
            raise ValueError(
                f"target_layer must be a block after source_layer={source}, from {source + 1} to {n_layers} "
                f"({n_layers}: the output of the last block), got {target_layer!r}")
        p_value = check_positive(p, "p (the exponent of each token's distance)")
        q_value = p_value if q is None else check_positive(q, "q (the root taken per prompt; None means q = p)")
        if not isinstance(prepend_bos, bool):
            raise ValueError(f"prepend_bos must be True or False, got {prepend_bos!r}")
        return cls(
            source_layer=source, target_layer=int(target_layer),
            radius=check_positive(radius, "radius (the norm R of every vector)"),
            steps=check_int(steps, "steps", 1, MAX_STEPS),
            p=p_value, q=q_value, lr=check_positive(lr, "lr (the learning rate)"),
            seed=check_int(seed, "seed", 0, 2**63 - 1), prepend_bos=prepend_bos,
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["betas"] = list(self.betas)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MelboSettings":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        missing = sorted(set(cls.__dataclass_fields__) - set(known) - {"betas"})
        if missing:
            raise ValueError(f"MELBO settings are missing {missing}")
        known["betas"] = tuple(float(b) for b in known.get("betas", BETAS))
        return cls(**known)
