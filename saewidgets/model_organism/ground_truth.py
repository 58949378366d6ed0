"""The organism's ground truth, read from data/ground_truth.json."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

DATA_DIR = Path(__file__).parent / "data"
MODEL_DIR = DATA_DIR / "model"
SAE_DIR = DATA_DIR / "sae"
CORPUS_FILE = "corpus.jsonl.gz"
LAYER_MAP_FILE = "self_explain_layer_map.safetensors"  # sw.self_explain's default for the organism's SAE  # held-out documents from the build's generator, one JSON string a line


@dataclass
class GroundTruth:
    """What is known about the organism by construction and by measurement.

    concepts: concept -> its words (each a single token as " word" and "word").
    features: one row per concept, measured on held-out text: concept, feature (SAE index),
        precision, recall, f1 (bare forms and category nouns left out), precision_strict,
        recall_strict, f1_strict (every token counted), recall_bare, feature_set (greedy union
        of up to 3 features) and f1_set, n_tokens, mean_act, max_act (where it fires).
    held_out: concept -> words whose definition sentences were withheld from training.
    concept_token_ids: concept -> token ids of its words with a leading space (" crimson").
    concept_token_ids_bare: concept -> token ids of the bare forms ("crimson": after a quote or at
        the start of an `x -> y` line); not counted in the features' precision / recall / F1.
    category_noun_ids: concept -> token ids of its own name (" colour", " job"); not counted either.
    icl_tasks: task -> (x, y) pairs; prompts are `x1 -> y1\\nx2 -> y2\\n...x ->`.
    layer, hook_name: where the SAE reads (resid_pre of block `layer` = hidden_states[layer]).
    metrics: the build's measurements (LM loss, ICL accuracy, definition accuracy, ...).
    """

    concepts: dict[str, list[str]]
    features: pd.DataFrame
    held_out: dict[str, list[str]]
    concept_token_ids: dict[str, list[int]]
    concept_token_ids_bare: dict[str, list[int]]
    category_noun_ids: dict[str, list[int]]
    icl_tasks: dict[str, list[tuple[str, str]]]
    layer: int
    hook_name: str
    model_name: str
    metrics: dict = field(repr=False)
    model_path: Path = MODEL_DIR
    sae_path: Path = SAE_DIR

    def _row(self, concept: str) -> pd.Series:
        if concept not in self.concepts:
            raise KeyError(f"unknown concept {concept!r}; the organism's concepts are {list(self.concepts)}")
        return self.features.set_index("concept").loc[concept]

    def feature(self, concept: str) -> int:
        """The SAE feature index of `concept`."""
        return int(self._row(concept)["feature"])

    def feature_set(self, concept: str) -> list[int]:
        """The features whose union best matches `concept` (first: `feature(concept)`)."""
        return [int(f) for f in self._row(concept)["feature_set"]]

    def concept_of(self, word: str) -> str | None:
        """The concept a word belongs to (None if not a concept word)."""
        return next((c for c, ws in self.concepts.items() if word in ws), None)


def load_ground_truth(data_dir: str | Path = DATA_DIR) -> GroundTruth:
    """Parse ground_truth.json from `data_dir`."""
    data_dir = Path(data_dir)
    rec = json.loads((data_dir / "ground_truth.json").read_text())
    return GroundTruth(
        concepts=rec["concepts"], features=pd.DataFrame(rec["features"]), held_out=rec["held_out"],
        concept_token_ids=rec["concept_token_ids"],
        concept_token_ids_bare=rec["concept_token_ids_bare"],
        category_noun_ids=rec["category_noun_ids"],
        icl_tasks={k: [tuple(p) for p in v] for k, v in rec["icl_tasks"].items()},
        layer=rec["layer"], hook_name=rec["hook_name"], model_name=rec["model_name"],
        metrics=rec["metrics"], model_path=data_dir / "model", sae_path=data_dir / "sae",
    )


def organism_ground_truth() -> GroundTruth:
    """Ground truth of the shipped organism (a fresh object per call)."""
    return load_ground_truth(DATA_DIR)


def organism_corpus(n: int | None = None, data_dir: str | Path = DATA_DIR) -> list[str]:
    """Held-out documents of the organism's synthetic world (4,000 shipped; the first ``n``).

    Written by the build from its own generator with a seed used for nothing else: the text to
    collect activation examples on, fit layer maps with, or test against.
    """
    import gzip

    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"n must be a positive number of documents (or None for all), got {n!r}")
    path = Path(data_dir) / CORPUS_FILE
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        docs = [json.loads(line) for line in lines]
    return docs if n is None else docs[:n]
