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

_GREY = "#8a8f98"  # readable on white and on dark notebook themes


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
    stack: bool = True,
    log_scale: bool = False,
    width: int = 420,
    height: int = 180,
    title: str | None = None,
    **kwargs: Any,
):
    """An altair bar chart of ``logit_histogram``: bars per bin, coloured by class.

    Give a histogram dict, or the arguments of ``logit_histogram``. ``stack``
    stacks the classes (else overlays them, translucent); ``log_scale`` uses a
    symlog count axis (for overlays: stacked bars on a log axis mislead). Only
    bin counts are sent (at most bins x labels rows), the background is
    transparent and texts are mid-grey, so it reads in light and dark themes.
    """
    import altair as alt

    if isinstance(hist_or_model, dict):
        hist = hist_or_model
    else:
        hist = logit_histogram(hist_or_model, sae, feature, classes=classes, bins=bins, **kwargs)
    frame = histogram_frame(hist)
    if len(frame) > 5000:
        raise ValueError(f"{len(frame)} bars are too many for one chart: use fewer bins or classes")
    value_title = "cosine with unembedding" if hist.get("cosine") else "logit weight"
    color = alt.Color(
        "class:N",
        scale=alt.Scale(domain=hist["labels"], scheme="tableau10"),
        sort=hist["labels"],
        legend=alt.Legend(title=None, orient="top"),
    )
    y_scale = alt.Scale(type="symlog") if log_scale else alt.Undefined
    chart = (
        alt.Chart(frame)
        .mark_bar(opacity=1.0 if stack else 0.6, binSpacing=0)
        .encode(
            x=alt.X("start:Q", bin="binned", title=value_title),
            x2="end:Q",
            y=alt.Y("count:Q", stack="zero" if stack else None, scale=y_scale, title="tokens"),
            color=color,
            order=alt.Order("order:Q"),
            tooltip=[
                alt.Tooltip("range:N", title="bin"),
                alt.Tooltip("class:N", title="class"),
                alt.Tooltip("count:Q", title="tokens"),
            ],
        )
        .properties(width=width, height=height, background="transparent")
    )
    if title is None and hist.get("feature") is not None:
        title = f"Feature {hist['feature']}: {value_title}s over the vocabulary"
    if title:
        chart = chart.properties(title=title)
    return (
        chart.configure_axis(labelColor=_GREY, titleColor=_GREY, gridColor=_GREY, gridOpacity=0.25,
                             domainColor=_GREY, tickColor=_GREY)
        .configure_legend(labelColor=_GREY, titleColor=_GREY)
        .configure_title(color=_GREY, anchor="start", fontWeight="normal")
        .configure_view(stroke=None)
    )


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
