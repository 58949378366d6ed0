"""Residual-stream activations and concept-feature precision / recall / F1."""

from __future__ import annotations

import pandas as pd
import torch
from tokenizers import Tokenizer
from transformers import PreTrainedModel

from .tokenizer import word_forms
from .vocab import CONCEPTS


def concept_token_ids(tok: Tokenizer) -> dict[str, list[int]]:
    """Token ids of each concept's single-token word forms (" word" and "word")."""
    out = {}
    for concept, words in CONCEPTS.items():
        ids = [tok.encode(f).ids for w in words for f in word_forms(w)]
        out[concept] = sorted({i[0] for i in ids if len(i) == 1})
    return out


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


def best_features(fires: torch.Tensor, ids: torch.Tensor,
                  concept_ids: dict[str, list[int]]) -> pd.DataFrame:
    """For each concept, the feature with the best F1 of "fires" vs "token is a concept word"."""
    rows = []
    for concept, cids in concept_ids.items():
        labels = torch.isin(ids, torch.tensor(cids))
        p, r, f1 = prf(fires, labels)
        j = int(f1.argmax())
        rows.append({"concept": concept, "feature": j, "precision": float(p[j]),
                     "recall": float(r[j]), "f1": float(f1[j]), "n_tokens": int(labels.sum())})
    return pd.DataFrame(rows)


def score_features(fires: torch.Tensor, ids: torch.Tensor, concept_ids: dict[str, list[int]],
                   features: dict[str, int]) -> pd.DataFrame:
    """Precision / recall / F1 of given concept -> feature assignments."""
    rows = []
    for concept, j in features.items():
        labels = torch.isin(ids, torch.tensor(concept_ids[concept]))
        p, r, f1 = prf(fires[:, [j]], labels)
        rows.append({"concept": concept, "feature": j, "precision": float(p[0]),
                     "recall": float(r[0]), "f1": float(f1[0])})
    return pd.DataFrame(rows)
