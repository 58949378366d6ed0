"""Activation examples, density, co-activation and labels of every feature, in one file.

>>> atlas = sw.collect_activations(model, sae, corpus, "features.sqlite")
>>> atlas.examples(47); atlas.stats(); atlas.search("crimson"); atlas.set_label(47, "colours")
"""

from .atlas import Atlas
from .collect import collect_activations
from .store import SCHEMA_VERSION, AtlasFileError

__all__ = ["Atlas", "AtlasFileError", "SCHEMA_VERSION", "collect_activations"]
