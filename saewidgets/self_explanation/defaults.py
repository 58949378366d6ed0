"""Self-explanation settings that belong to an SAE (e.g. the organism's fitted layer map).

``set_self_explain_defaults(sae, layer_map=..., template=...)`` attaches keyword arguments of
``sw.self_explain`` to an SAE object; ``sw.self_explain`` and the explorer use them unless the
caller gives their own. Kept beside the SAE (a weak reference), not in it: nothing changes in its
weights or saved files.
"""

from __future__ import annotations

import weakref
from typing import Any

_DEFAULTS: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()
ALLOWED = ("template", "layer", "probe_layer", "layer_map", "max_new_tokens", "placeholder", "stop", "scales",
           "min_scale", "failure_threshold", "batch_size")


def set_self_explain_defaults(sae: Any, **options: Any) -> None:
    """Make ``options`` the self-explanation defaults of ``sae`` (no options: clear them)."""
    sae = getattr(sae, "sae", sae)
    unknown = sorted(set(options) - set(ALLOWED))
    if unknown:
        raise ValueError(f"unknown self-explanation defaults {unknown}; allowed: {list(ALLOWED)}")
    if options:
        _DEFAULTS[sae] = dict(options)
    else:
        _DEFAULTS.pop(sae, None)


def self_explain_defaults(sae: Any) -> dict:
    """The self-explanation defaults attached to ``sae`` (a copy; empty when none)."""
    if sae is None:
        return {}
    return dict(_DEFAULTS.get(getattr(sae, "sae", sae), {}))
