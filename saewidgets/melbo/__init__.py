"""MELBO: unsupervised steering vectors (Mack 2024), learned through the engine, and what they mean.

>>> vectors = sw.melbo(model, prompts, source_layer=1, target_layer=3, radius=8, n_vectors=16)
>>> vectors[0]                                   # an sw.Direction at resid_pre[1], norm R
>>> report = sw.melbo_meaning(model, sae, vectors, held_out=[...])   # generations, SAE codes, lens, ...
>>> sw.MelboExplorer(model, sae, prompts, vectors=vectors)           # the gallery widget
"""

from .result import MelboVectors
from .settings import MelboSettings
from .store import MelboStore, Progress, RunRecord, VectorRecord
from .train import MelboStep, melbo, objective

__all__ = ["MelboSettings", "MelboStep", "MelboStore", "MelboVectors", "Progress", "RunRecord", "VectorRecord",
           "melbo", "objective"]


def _callable_package() -> None:
    """``sw.melbo`` is this package (Python makes a subpackage an attribute of its parent once it is
    imported), so the package itself is callable: ``sw.melbo(model, prompts, ...)`` is ``melbo(...)``."""
    import inspect
    import sys
    import types

    class MelboPackage(types.ModuleType):
        def __call__(self, *args, **kwargs):  # noqa: ANN002, ANN003
            return melbo(*args, **kwargs)

    module = sys.modules[__name__]
    module.__class__ = MelboPackage
    module.__signature__ = inspect.signature(melbo)  # type: ignore[attr-defined]  # help() and IDEs show its parameters


_callable_package()
