"""saewidgets: Jupyter widgets and analyses for sparse-autoencoder features, through nnsight.

>>> import saewidgets as sw
>>> model, sae = sw.organism()          # the built-in model organism, offline
>>> sw.FeatureExplorer(model, sae, feature=3)
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .core import SAE, Binding, HookPoint, ModelLayout, bind, load_model, load_sae, save_sae

try:  # the installed distribution's version (pyproject.toml), one source of truth
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("saewidgets")
except PackageNotFoundError:  # a source tree on sys.path without an install
    __version__ = "0+unknown"


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
    "organism_corpus": ".model_organism",
    "logit_weights": ".logit_lens",
    "logit_stats": ".logit_lens",
    "logit_lens_table": ".logit_lens",
    "TokenClasses": ".tokens",
    "token_classes": ".tokens",
    "enrichment": ".logit_lens",
    "logit_histogram": ".logit_lens",
    "logit_histogram_chart": ".logit_lens",
    "steer": ".steering",
    "SteeringResult": ".steering",
    "SteeringStep": ".steering",
    "Continuation": ".steering",
    "self_explain": ".self_explanation",
    "self_explanation_chart": ".self_explanation",
    "best_explanations": ".self_explanation",
    "explanation_at": ".self_explanation",
    "fit_layer_map": ".self_explanation",
    "LayerMap": ".self_explanation",
    "FeatureExplorer": ".widgets.explorer",
    "Direction": ".core.direction",
    "Decoding": ".engine",
    "decompose": ".decomposition",
    "SparseCode": ".decomposition",
    "set_self_explain_defaults": ".self_explanation.defaults",
    "export": ".export",
    "Chart": ".chart",
    "collect_activations": ".atlas",
    "Atlas": ".atlas",
    "FeatureTable": ".widgets.table",
    "icl_prompts": ".tasks",
    "ICLPrompt": ".tasks",
    "task_vector": ".tasks",
    "evaluate_task_vector": ".tasks",
    "TaskEvaluation": ".tasks",
    "layer_sweep": ".tasks",
    "LayerSweep": ".tasks",
    "task_features": ".tasks",
    "TaskFeatures": ".tasks",
    "TaskExplorer": ".widgets.tasks",
    "melbo": ".melbo",
    "MelboVectors": ".melbo",
    "MelboStore": ".melbo",
    "melbo_meaning": ".melbo.meaning",
    "MelboExplorer": ".widgets.melbo",
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
