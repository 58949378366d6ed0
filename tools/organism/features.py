"""Residual-stream activations and concept-feature precision / recall / F1."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from tokenizers import Tokenizer
from transformers import PreTrainedModel

from .tokenizer import word_forms
from .vocab import CATEGORY_NOUN, CONCEPTS


def _single_token_ids(tok: Tokenizer, texts: list[str]) -> list[int]:
    encoded = (tok.encode(t).ids for t in texts)
    return sorted({ids[0] for ids in encoded if len(ids) == 1})


def concept_token_ids(tok: Tokenizer, form: str = "space") -> dict[str, list[int]]:
    """Token ids of each concept's words: `form` "space" (" word", the usual word-list
    convention), "bare" ("word", as after a quote or at a line start) or "both"."""
    index = {"space": [0], "bare": [1], "both": [0, 1]}[form]
    return {c: _single_token_ids(tok, [word_forms(w)[i] for w in ws for i in index])
            for c, ws in CONCEPTS.items()}


def category_noun_ids(tok: Tokenizer) -> dict[str, list[int]]:
    """Token ids of each concept's own name (" colour", " job", ...), both forms."""
    return {c: _single_token_ids(tok, list(word_forms(noun))) for c, (_, noun) in CATEGORY_NOUN.items()}


@dataclass(frozen=True)
class ConceptLabels:
    """Which token ids count for each concept when scoring features.

    space: " word" forms, the positives. bare: "word" forms (after a quote or at the start of an
    `x -> y` line). nouns: the concepts' own names (" colour"). Bare forms and names are left out
    of the main precision / recall / F1 (neither positive nor negative); the strict scores count
    every form of the concept's words as positive and everything else as negative.
    """

    space: dict[str, list[int]]
    bare: dict[str, list[int]]
    nouns: dict[str, list[int]]

    @classmethod
    def from_tokenizer(cls, tok: Tokenizer) -> "ConceptLabels":
        return cls(concept_token_ids(tok, "space"), concept_token_ids(tok, "bare"),
                   category_noun_ids(tok))

    def ignored(self) -> torch.Tensor:
        return torch.tensor(sorted({i for d in (self.bare, self.nouns) for v in d.values() for i in v}),
                            dtype=torch.long)


@torch.no_grad()
def residuals(model: PreTrainedModel, windows: torch.Tensor, layer: int,
              batch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """resid_pre of block `layer` (= hidden_states[layer]) and token ids, position 0 dropped."""
    acts, ids = [], []
    for i in range(0, len(windows), batch):
        x = windows[i:i + batch]
        hs = model(input_ids=x, output_hidden_states=True).hidden_states[layer]
        acts.append(hs[:, 1:].reshape(-1, hs.shape[-1]))
        ids.append(x[:, 1:].reshape(-1))
    return torch.cat(acts), torch.cat(ids)


@torch.no_grad()
def firing(encode, acts: torch.Tensor, batch: int = 8192) -> torch.Tensor:
    """Boolean (n x d_sae): which features fire (> 0) on each activation."""
    return torch.cat([encode(acts[i:i + batch]) > 0 for i in range(0, len(acts), batch)])


def prf(fires: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Precision, recall and F1 of each column of `fires` against boolean `labels`."""
    f = fires.float()
    tp = (f * labels[:, None].float()).sum(0)
    precision = tp / f.sum(0).clamp_min(1)
    recall = tp / labels.float().sum().clamp_min(1)
    f1 = 2 * precision * recall / (precision + recall).clamp_min(1e-8)
    return precision, recall, f1


def feature_set(fires: torch.Tensor, labels: torch.Tensor, first: int, max_size: int = 3,
                min_gain: float = 0.01) -> list[int]:
    """Greedy union of features for one concept (split features: `Rome` and `Oslo` on two)."""
    chosen = [first]
    union = fires[:, first].clone()
    best = float(prf(union[:, None], labels)[2][0])
    while len(chosen) < max_size:
        f1 = prf(fires | union[:, None], labels)[2]  # the union with each candidate added
        j = int(f1.argmax())
        if float(f1[j]) < best + min_gain:
            break
        chosen.append(j)
        union |= fires[:, j]
        best = float(f1[j])
    return chosen


def _concept_row(fires: torch.Tensor, ids: torch.Tensor, labels: ConceptLabels, concept: str,
                 keep: torch.Tensor, feature: int | None) -> dict:
    space = torch.isin(ids, torch.tensor(labels.space[concept], dtype=torch.long))
    bare = torch.isin(ids, torch.tensor(labels.bare[concept], dtype=torch.long))
    p, r, f1 = prf(fires[keep], space[keep])
    j = int(f1.argmax()) if feature is None else feature
    strict = [float(x[0]) for x in prf(fires[:, [j]], space | bare)]
    chosen = feature_set(fires[keep], space[keep], j)
    set_scores = prf(fires[keep][:, chosen].any(1, keepdim=True), space[keep])
    return {"concept": concept, "feature": j, "precision": float(p[j]), "recall": float(r[j]),
            "f1": float(f1[j]), "precision_strict": strict[0], "recall_strict": strict[1],
            "f1_strict": strict[2],
            "recall_bare": float(fires[bare, j].float().mean()) if bare.any() else 0.0,
            "feature_set": chosen, "f1_set": float(set_scores[2][0]), "n_tokens": int(space.sum())}


def best_features(fires: torch.Tensor, ids: torch.Tensor, labels: ConceptLabels,
                  features: dict[str, int] | None = None) -> pd.DataFrame:
    """Per concept, the feature with the best F1 of "fires (> 0)" vs "token is one of the concept's
    words" (or the given `features`), with strict scores and a greedy feature set (see
    `ConceptLabels` for which tokens count)."""
    keep = ~torch.isin(ids, labels.ignored())
    return pd.DataFrame([_concept_row(fires, ids, labels, c, keep, None if features is None else features[c])
                         for c in labels.space])
