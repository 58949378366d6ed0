"""Histogram of one feature's logit weights over the vocabulary, split by token class.

>>> hist = sw.logit_histogram(model, sae, 3, classes="case")   # JSON-ready dict
>>> sw.logit_histogram_chart(hist)                              # altair chart
"""

from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .lens import logit_weights
from .core import NOT_GIVEN, resolve
from ..tokens.classes import TokenClasses
from ..tokens.classes import token_classes as build_token_classes



def logit_histogram(
    model: Any,
    sae: Any = NOT_GIVEN,
    feature: Any = None,
    *,
    classes: str | Sequence[str] | None = "starts_with_space",
    bins: int = 60,
    cosine: bool = False,
    fold_norm: bool = True,
    token_classes: TokenClasses | None = None,
) -> dict:
    """Counts of one feature's logit weights in shared bins, per class label.

    ``feature``: an index or a direction vector. ``classes``: a label group or
    class name of ``sw.token_classes`` ("starts_with_space", "case", "length",
    "first_letter", "token_type", any class -> in / not in), a list of class names
    (first match wins, else "other"), or None (one label, "all"). Pass your own
    ``TokenClasses`` (with word lists, regexes...) as ``token_classes``.

    Returns a JSON-serialisable dict: ``edges`` (bins + 1 floats, shared),
    ``labels`` (non-empty labels, display order), ``counts`` (label -> bins ints,
    summing to the vocabulary size over labels), ``stats`` (label -> n, mean, std,
    min, max), plus ``feature``, ``classes``, ``n_tokens``, ``cosine``, ``fold_norm``.
    """
    binding, (feature,) = resolve(model, sae, feature)
    if feature is None:
        raise ValueError("give the feature to plot: an index or a direction vector")
    if isinstance(bins, bool) or not isinstance(bins, numbers.Integral) or not 1 <= bins <= 1000:
        raise ValueError(f"bins must be an integer between 1 and 1000, got {bins!r}")
    weights = logit_weights(binding, feature, cosine=cosine, fold_norm=fold_norm)
    if weights.shape[0] != 1:
        raise ValueError("logit_histogram shows one feature: give a single index or direction")
    w = weights[0].double().numpy()
    labels = _labels(binding, classes, token_classes, w.size)
    lo, hi = float(w.min()), float(w.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, int(bins) + 1)
    which = np.clip(np.searchsorted(edges, w, side="right") - 1, 0, int(bins) - 1)
    codes = np.asarray(labels.codes, dtype=np.int64)
    table = np.bincount(codes * int(bins) + which, minlength=len(labels.categories) * int(bins))
    table = table.reshape(len(labels.categories), int(bins))
    names = [str(c) for c in labels.categories]
    keep = [i for i in range(len(names)) if table[i].sum() > 0]
    stats = {}
    for i in keep:
        values = w[codes == i]
        stats[names[i]] = {
            "n": int(values.size),
            "mean": float(values.mean()),
            "std": float(values.std()),
            "min": float(values.min()),
            "max": float(values.max()),
        }
    feature_id = int(feature) if isinstance(feature, numbers.Integral) else None
    return {
        "feature": feature_id,
        "classes": classes if classes is None or isinstance(classes, str) else list(classes),
        "labels": [names[i] for i in keep],
        "edges": [float(e) for e in edges],
        "counts": {names[i]: [int(c) for c in table[i]] for i in keep},
        "stats": stats,
        "n_tokens": int(w.size),
        "cosine": bool(cosine),
        "fold_norm": bool(fold_norm),
    }


def logit_histogram_chart(
    hist_or_model: Any,
    sae: Any = NOT_GIVEN,
    feature: Any = None,
    *,
    classes: str | Sequence[str] | None = "starts_with_space",
    bins: int = 60,
    yscale: str = "sqrt",
    width: int = 420,
    height: int = 180,
    title: str | None = None,
    **kwargs: Any,
):
    """The logit histogram split by token class, as a chart: the explorer's own Vega-Lite spec
    (``saewidgets.logit_lens.charts.histogram_spec``) with its data, drawn offline by the package's
    bundled Vega in notebooks (no CDN) and by vl-convert in images (``chart.save("x.png")``).

    Give a histogram dict, or the arguments of ``logit_histogram`` (a feature index or an
    ``sw.Direction``). ``yscale``: "sqrt" (default: small classes stay visible), "linear" or
    "symlog"; classes are layered, not stacked. Only bin counts travel (bins x classes rows).
    """
    from ..chart import Chart
    from .charts import DATASET, Y_TITLES, histogram_payload, histogram_rows, histogram_spec, themed

    if yscale not in Y_TITLES:
        raise ValueError(f"yscale must be one of {sorted(Y_TITLES)}, got {yscale!r}")
    if isinstance(hist_or_model, dict):
        hist = hist_or_model
    else:
        hist = logit_histogram(hist_or_model, sae, feature, classes=classes, bins=bins, **kwargs)
    label = hist.get("feature")
    payload = histogram_payload(hist, label if isinstance(label, int) else None, classes, yscale=yscale)
    if title is None and isinstance(label, int):
        title = f"Feature {label}: {payload['xlabel']}s over the vocabulary"
    spec = histogram_spec(payload, width=width, height=height, title=title)
    return Chart(themed(spec, {DATASET: histogram_rows(payload)}, transparent=True))


def histogram_frame(hist: dict) -> pd.DataFrame:
    """One row per (bin, label) with a non-zero count: start, end, class, count, range."""
    edges = hist["edges"]
    rows = []
    for order, label in enumerate(hist["labels"]):
        for b, count in enumerate(hist["counts"][label]):
            if count:
                start, end = edges[b], edges[b + 1]
                rows.append({"start": start, "end": end, "class": label, "count": count,
                             "order": order, "range": f"{start:.4g} to {end:.4g}"})
    return pd.DataFrame(rows, columns=["start", "end", "class", "count", "order", "range"])


def _labels(binding: Any, classes: Any, given: TokenClasses | None, vocab: int) -> pd.Categorical:
    if classes is None:
        return pd.Categorical(np.full(vocab, "all", dtype=object), categories=["all"])
    source = given if given is not None else build_token_classes(binding)
    if source.vocab_size != vocab:
        raise ValueError(
            f"the token classes cover {source.vocab_size} tokens but the unembedding has {vocab}; "
            "build them with sw.token_classes(binding)"
        )
    return source.labels(classes)
