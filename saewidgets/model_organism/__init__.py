"""The built-in model organism: a tiny GPT-2 and SAE with known ground-truth features.

>>> model, sae = organism()
>>> gt = organism_ground_truth(); gt.feature("colour")
"""

from .ground_truth import GroundTruth, load_ground_truth, organism_corpus, organism_ground_truth
from .load import organism, organism_raw

__all__ = ["GroundTruth", "load_ground_truth", "organism", "organism_corpus", "organism_ground_truth", "organism_raw"]
