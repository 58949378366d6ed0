"""What the engine does to a row and what it reads back: ``Edit``, ``Read`` and ``Row``.

Positions count a row's own prompt tokens (0 = its first token, -1 = its last), whatever
padding the batch adds. ``"all"`` means every prompt position and every generated token (the
steering case: with a KV cache each generated token is a forward call of length 1, and it is
edited too); ``"prompt"`` every prompt position, on the prompt pass only; a tuple of indices
those prompt positions only.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence, Union

import torch

Site = Literal["resid_pre", "resid_post"]
Positions = Union[Literal["all", "prompt"], tuple[int, ...]]
OPS = ("add", "replace", "clamp")
SITES = ("resid_pre", "resid_post")


def check_positions(positions: Any) -> Positions:
    if positions in ("all", "prompt"):
        return positions
    if isinstance(positions, numbers.Integral) and not isinstance(positions, bool):
        return (int(positions),)
    if isinstance(positions, (list, tuple, range)) and positions:
        if all(isinstance(p, numbers.Integral) and not isinstance(p, bool) for p in positions):
            return tuple(int(p) for p in positions)
    raise ValueError(f"positions must be 'all', 'prompt' or a non-empty list of prompt token indices, got {positions!r}")


@dataclass(frozen=True)
class Edit:
    """One change to one row's residual stream at ``site`` of block ``layer``.

    ``op="add"``: ``x + vector``; ``"replace"``: ``vector`` instead of ``x``; ``"clamp"``: set
    SAE feature ``feature``'s activation to ``value``, ``x + (value - a_f(x)) * vector`` with
    ``vector`` the feature's decoder row and ``a_f`` the ``sae``'s encoder. At one site the
    replacements apply first, then the additions, then the clamps.
    """

    layer: int
    vector: torch.Tensor
    op: Literal["add", "replace", "clamp"] = "add"
    site: Site = "resid_pre"
    positions: Positions = "all"
    sae: Any = field(default=None, compare=False, repr=False)
    feature: int | None = None
    value: float = 0.0

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"unknown edit op {self.op!r}; use one of {OPS}")
        if self.site not in SITES:
            raise ValueError(f"unknown residual-stream site {self.site!r}; use one of {SITES}")
        if isinstance(self.layer, bool) or not isinstance(self.layer, numbers.Integral) or self.layer < 0:
            raise ValueError(f"an edit's layer must be a block index >= 0, got {self.layer!r}")
        vector = torch.as_tensor(self.vector)
        if vector.ndim != 1 or not vector.is_floating_point():
            raise ValueError(f"an edit's vector must be a 1-D float tensor (d_model), got shape {tuple(vector.shape)}")
        object.__setattr__(self, "vector", vector)
        object.__setattr__(self, "positions", check_positions(self.positions))
        if self.op == "clamp" and (self.sae is None or self.feature is None):
            raise ValueError("a clamp edit needs the SAE and the feature whose activation it sets (sae=, feature=)")


@dataclass(frozen=True)
class Read:
    """Something to read back from the prompt pass of every row.

    ``site``: ``"resid_pre"`` / ``"resid_post"`` of block ``layer`` (``layer == n_layers`` with
    ``resid_pre``: the residual after the last block, entering the final norm), or ``"logits"``.
    ``positions``: ``"last"`` (each row's last prompt token: rows x d), ``"all"`` (rows x width x d,
    left-padded; ``Trace.mask`` says which positions are real) or a tuple of prompt indices (the
    same for every row: rows x len x d). ``fn(value, mask)``, if given, runs inside the trace on the
    read value and the rows x width attention mask; only its result comes back (a remote run then
    returns the reduction, not the residual stream). ``after_edits=False`` reads the residual as
    the model computed it, before this point's edits.
    """

    name: str
    layer: int | None = None
    site: Literal["resid_pre", "resid_post", "logits"] = "resid_pre"
    positions: Literal["last", "all"] | tuple[int, ...] = "last"
    fn: Callable[[torch.Tensor, torch.Tensor], Any] | None = field(default=None, compare=False)
    after_edits: bool = True


@dataclass(frozen=True)
class Row:
    """One row of a batch: a prompt (text, or token ids used as given) and its edits."""

    prompt: str | Sequence[int]
    edits: tuple[Edit, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "edits", tuple(self.edits))
        for edit in self.edits:
            if not isinstance(edit, Edit):
                raise ValueError(f"a row's edits must be sw.engine.Edit values, got {type(edit).__name__}")
