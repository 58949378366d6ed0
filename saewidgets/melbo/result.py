"""``MelboVectors``: the vectors of a MELBO run, as a list of ``sw.Direction`` with their objectives."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence, overload

import torch

from ..core.direction import Direction
from .settings import MelboSettings


def melbo_direction(vector: Any, index: int, settings: MelboSettings, objective: float, *, run: int | None = None,
                    name: str | None = None) -> Direction:
    """Vector ``index`` of a run as a Direction at resid_pre[source_layer], with its provenance."""
    provenance = {"method": "melbo", "index": index, "objective": objective, "run": run, **settings.to_dict()}
    return Direction(vector, name=name or f"MELBO {index}", provenance=provenance, layer=settings.source_layer,
                     site="resid_pre")


@dataclass
class MelboVectors(Sequence[Direction]):
    """Learned MELBO vectors: index or iterate them for ``sw.Direction`` values.

    >>> vectors = sw.melbo(model, prompts, source_layer=1, target_layer=3, radius=8, n_vectors=8)
    >>> vectors[0].vector, vectors.objectives[0]     # a d_model tensor of norm R; its objective
    >>> vectors.to_frame()                            # index, name, objective, norm, seconds
    >>> sw.steer(model, sae, "Hi", vectors[0], hook="blocks.1.hook_resid_pre")

    ``objectives[i]``: ``sum_prompts (sum_t ||Z_t - Z_t(0)||^p)^(1/q)`` at the vector found;
    ``histories[i]``: the objective before each step; ``settings`` and ``prompts``: what the run
    was trained with; ``path`` and ``run``: where it is stored (``MelboVectors.load``).
    """

    directions: list[Direction]
    objectives: list[float]
    settings: MelboSettings
    prompts: list[str]
    histories: list[list[float]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    model: str = ""
    path: str | None = None
    run: int | None = None
    key: str | None = None  # the training run's store key (a store can resume training from it)

    # -- list-like --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.directions)

    @overload
    def __getitem__(self, index: int) -> Direction: ...

    @overload
    def __getitem__(self, index: slice) -> "MelboVectors": ...

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            pick = range(len(self))[index]
            return MelboVectors([self.directions[i] for i in pick], [self.objectives[i] for i in pick], self.settings,
                                self.prompts, [self.histories[i] for i in pick] if self.histories else [],
                                [self.seconds[i] for i in pick] if self.seconds else [], self.model, self.path,
                                self.run, self.key if pick.start == 0 and pick.step == 1 else None)
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"MELBO vectors are indexed by position (int) or slice, got {type(index).__name__}")
        if not -len(self) <= index < len(self):
            raise IndexError(f"vector {index} does not exist: this run has {len(self)} vectors")
        return self.directions[index]

    def __iter__(self) -> Iterator[Direction]:
        return iter(self.directions)

    # -- views ------------------------------------------------------------------------------
    @property
    def vectors(self) -> torch.Tensor:
        """All vectors as one n x d_model tensor."""
        if not self.directions:
            return torch.zeros(0, 0)
        return torch.stack([d.vector for d in self.directions])

    @property
    def radius(self) -> float:
        return self.settings.radius

    @property
    def source_layer(self) -> int:
        return self.settings.source_layer

    @property
    def target_layer(self) -> int:
        return self.settings.target_layer

    @property
    def hook(self) -> str:
        """Where the vectors are added, as a SAELens hook name (``hook=`` of ``sw.steer`` and the explorer)."""
        return f"blocks.{self.settings.source_layer}.hook_resid_pre"

    def to_frame(self) -> Any:
        """One row per vector: index, name, objective, norm, steps, seconds."""
        import pandas as pd

        return pd.DataFrame({
            "index": list(range(len(self))),
            "name": [d.name for d in self.directions],
            "objective": self.objectives,
            "norm": [d.norm() for d in self.directions],
            "steps": [self.settings.steps] * len(self),
            "seconds": self.seconds if len(self.seconds) == len(self) else [float("nan")] * len(self),
        })

    def objective_of(self, model: Any, vectors: Any, *, batch_size: int | None = None, remote: Any = False) -> list[float]:
        """The run's objective (same prompts, layers, p and q) for other ``vectors`` (a Direction,
        a d_model tensor, or several): e.g. random vectors of norm R, to compare with."""
        from .train import objective

        return objective(model, self.prompts, vectors, self.settings, batch_size=batch_size, remote=remote)

    def save(self, path: str | os.PathLike) -> int:
        """Write these vectors to the MELBO store at ``path``; returns the run id there. Vectors
        straight from ``sw.melbo`` keep their training key, so ``sw.melbo(..., path=path)`` with the
        same model, prompts and settings continues from them."""
        from .store import MelboStore, VectorRecord
        from .train import run_key

        store = MelboStore(path)
        d_model = int(self.directions[0].d_model) if self.directions else 0  # type: ignore[arg-type]
        key = self.key or run_key(self.model, self.prompts, self.settings, saved=True)
        run = store.run(key, model=self.model, d_model=d_model, settings=self.settings.to_dict(), prompts=self.prompts)
        for i, direction in enumerate(self.directions):
            store.add_vector(run, VectorRecord(i, direction.vector.numpy(), float(self.objectives[i]),
                                               self.histories[i] if self.histories else [],
                                               self.seconds[i] if self.seconds else 0.0, direction.name))
        return run

    @classmethod
    def load(cls, path: str | os.PathLike, run: int | None = None) -> "MelboVectors":
        """The vectors of ``run`` (default: the only run) in the MELBO store at ``path``; no model needed."""
        from .store import MelboStore

        store = MelboStore(path)
        record = store.get_run(run)
        return from_store(store, record.id)

    def __repr__(self) -> str:
        s = self.settings
        return (f"MelboVectors({len(self)} vectors, R={s.radius:g}, resid_pre[{s.source_layer}] -> "
                f"resid_pre[{s.target_layer}], {len(self.prompts)} prompts, {s.steps} steps)")


def from_store(store: Any, run: int) -> MelboVectors:
    """A run of a ``MelboStore`` as MelboVectors."""
    record = store.get_run(run)
    settings = MelboSettings.from_dict(record.settings)
    rows = store.vectors(run)
    directions = [melbo_direction(torch.from_numpy(r.vector.copy()), r.index, settings, r.objective, run=run, name=r.name)
                  for r in rows]
    return MelboVectors(directions, [r.objective for r in rows], settings, list(record.prompts),
                        [r.history for r in rows], [r.seconds for r in rows], record.model, str(store.path), run,
                        record.key)
