"""saewidgets: Jupyter widgets and analyses for sparse-autoencoder features, through nnsight.

>>> import saewidgets as sw
>>> model, sae = sw.organism()          # the built-in model organism, offline
>>> sw.FeatureExplorer(model, sae, feature=3)
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .core import SAE, Binding, HookPoint, ModelLayout, bind, load_model, load_sae, save_sae

__version__ = "0.1.0"


def _ship_by_value() -> None:
    """Serialise saewidgets' own functions by value in nnsight requests: NDIF servers do
    not have this package installed (nnsight's ``remote="local"`` checks exactly that)."""
    import sys

    from nnsight import register

    register(sys.modules[__name__])


_ship_by_value()

# Public names served lazily from the module that owns them (keeps `import saewidgets` light).
_LAZY = {
    "organism": ".model_organism",
    "organism_ground_truth": ".model_organism",
    "logit_weights": ".analysis.logit_lens",
    "logit_stats": ".analysis.logit_lens",
    "TokenClasses": ".analysis.token_classes",
    "token_classes": ".analysis.token_classes",
    "enrichment": ".analysis.enrichment",
    "logit_histogram": ".analysis.histogram",
    "logit_histogram_chart": ".analysis.histogram",
    "steer": ".analysis.steering",
    "SteeringResult": ".analysis.steering",
    "SteeringStep": ".analysis.steering",
    "Continuation": ".analysis.steering",
    "self_explain": ".analysis.self_explain",
    "self_explanation_chart": ".analysis.self_explain",
    "best_explanations": ".analysis.self_explain",
    "explanation_at": ".analysis.self_explain",
    "fit_layer_map": ".analysis.self_explain",
    "LayerMap": ".analysis.self_explain",
    "FeatureExplorer": ".widgets.explorer",
    "export": ".export",
}

__all__ = ["SAE", "Binding", "HookPoint", "ModelLayout", "bind", "load_model", "load_sae", "save_sae", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'saewidgets' has no attribute {name!r}")
    imported = import_module(module, __name__)
    value = imported if module == f".{name}" else getattr(imported, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
