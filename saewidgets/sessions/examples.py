"""What the explorer's examples panel shows, from an ``sw.Atlas``: plain Python, JSON out.

``ExamplesView(binding, atlas)`` answers, per feature: the top activating contexts (token
strings and their activations: the view renders them as text), the quantile groups, the
activation density (a pre-binned histogram and its Vega-Lite spec, built once here), the
firing frequency, similar features by decoder cosine and by co-activation, the tokens it fires
on, and the user's label. The label box writes through ``set_label`` (committed at once).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..atlas import Atlas
from ..core.binding import Binding
from ..logit_lens.charts import histogram_spec

SIMILAR = 8  # similar features shown per list
TOP_SHOWN = 20
QUANTILE_SHOWN = 5  # examples shown per quantile group


def density_payload(hist: dict, feature: int) -> dict:
    """The density histogram as the explorer's histogram payload (edges, one series, spec)."""
    payload = {"feature": feature, "edges": [float(e) for e in hist["edges"]],
               "series": [{"name": "nonzero activations", "counts": [int(c) for c in hist["counts"]]}],
               "xlabel": "activation", "yscale": "sqrt"}
    spec = histogram_spec(payload, width=300, height=110)
    spec["encoding"]["color"]["legend"] = None
    payload["spec"] = spec
    return payload


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _example(row: Any) -> dict:
    return {"tokens": [str(t) for t in row.tokens], "acts": [round(float(a), 4) for a in row.acts],
            "value": round(float(row.value), 4), "peak": int(row.peak), "doc": int(row.doc),
            "position": int(row.position)}


class ExamplesView:
    """The examples panel's data for one Binding and its atlas (see the module docstring)."""

    def __init__(self, binding: Binding, atlas: Any) -> None:
        self.binding = binding
        self.atlas = atlas if isinstance(atlas, Atlas) else Atlas.open(atlas)
        self.atlas.matches(binding)
        self._unit_decoder: torch.Tensor | None = None  # decoder row norms

    # -- per feature --------------------------------------------------------------------------
    def payload(self, feature: int) -> dict:
        """The ``examples`` trait for ``feature``."""
        atlas = self.atlas
        stats = atlas.feature_stats(feature)
        top = atlas.examples(feature, "top", limit=TOP_SHOWN)
        groups = [{"low": round(g["low"], 4), "high": round(g["high"], 4), "count": g["count"],
                   "examples": [_example(r) for r in g["examples"].head(QUANTILE_SHOWN).itertuples()]}
                  for g in atlas.quantile_groups(feature)]
        labels = atlas.labels()
        coact = atlas.coactivation(feature, SIMILAR)
        neighbours = self.decoder_neighbours(feature)
        for f in [f for f, _ in neighbours] + [int(x) for x in coact["feature"]]:
            if f not in labels:  # no label: what it fires on most
                labels[f] = " ".join(repr(t) for t in atlas.activating_tokens(f, 3)["token"])
        return {
            "feature": feature,
            "status": "ready",
            "atlas": str(atlas.path.name),
            "n_tokens": atlas.n_tokens,
            "stats": {"frequency": _number(stats.get("frequency")), "max_act": _number(stats.get("max_act")),
                      "mean_act": _number(stats.get("mean_act")), "n_fired": int(stats.get("n_fired") or 0)},
            "top": [_example(r) for r in top.itertuples()],
            "quantiles": groups,
            "density": density_payload(atlas.histogram(feature), feature),
            "similar": [[f, round(c, 4), labels.get(f, "")] for f, c in neighbours],
            "coactivation": [[int(r.feature), int(r.count), round(float(r.share), 4), labels.get(int(r.feature), "")]
                             for r in coact.itertuples()],
            "tokens": [[str(r.token), int(r.count)] for r in atlas.activating_tokens(feature, 8).itertuples()],
            "label": atlas.label(feature),
            "notes": atlas.notes(feature),
            "explanation": atlas.explanation(feature),
        }

    def decoder_neighbours(self, feature: int, k: int = SIMILAR) -> list[tuple[int, float]]:
        """Features whose decoder rows point most the same way (cosine), the feature itself left out."""
        w = self.binding.sae.W_dec.detach()
        if self._unit_decoder is None:  # the rows' norms only: no copy of the decoder
            self._unit_decoder = w.float().norm(dim=1).clamp_min(1e-12)
        norms = self._unit_decoder
        cos = (w @ w[feature]).float() / (norms * norms[feature])
        cos[feature] = -2.0
        values, index = cos.topk(min(k, w.shape[0] - 1))
        return [(int(i), float(v)) for v, i in zip(values.tolist(), index.tolist())]

    def max_activation(self, feature: int) -> float | None:
        """The feature's largest measured activation (the steering slider spans about twice it)."""
        value = _number(self.atlas.feature_stats(feature).get("max_act"))
        return value if value and value > 0 else None

    # -- every feature ----------------------------------------------------------------------------
    def search(self, query: str, limit: int = 30) -> list[list]:
        """``[feature, what matched]`` from the atlas's search (labels, explanations, activating tokens)."""
        frame = self.atlas.search(query, limit=limit)
        return [[int(f), str(m)] for f, m in zip(frame["feature"], frame["match"])]

    def set_label(self, feature: int, text: str) -> None:
        self.atlas.set_label(feature, text)

    def set_notes(self, feature: int, text: str) -> None:
        self.atlas.set_notes(feature, text)
