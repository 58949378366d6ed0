"""The logit histogram's Vega-Lite spec: built once here, drawn the same live, exported and as images.

``histogram_spec(payload)`` takes the explorer's histogram payload (pre-binned counts per token
class, see ``histogram_payload``) and returns a spec whose data is the named dataset ``bins``
(rows from ``histogram_rows``; the front end computes the same rows from the same payload, so
counts travel compactly). The spec holds no theme: the view adds its colours from the page's
CSS (``config``), and ``themed(spec, rows)`` adds a light theme and the data for images and the
script-free picture.
"""

from __future__ import annotations

from typing import Any, Mapping

DATASET = "bins"
# Tableau 10: readable on light and dark backgrounds; grey for the "other" side of a split.
CATEGORICAL = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")
GREY = "#9aa0a6"
FONT = "system-ui, -apple-system, Segoe UI, Roboto, sans-serif"
Y_TITLES = {"sqrt": "tokens (square-root scale)", "linear": "tokens", "log": "tokens (log scale)",
            "symlog": "tokens (symlog scale)"}
LIGHT = {"text1": "#1f1f1f", "text2": "#555555", "border": "#c8c8c8", "grid": "#e8e8e8", "background": "white"}


def histogram_payload(raw: Mapping[str, Any], feature: int | None, token_class: Any,
                      yscale: str = "sqrt") -> dict:
    """The compact histogram of ``sw.logit_histogram`` (edges, counts per class) with its spec."""
    edges = [float(e) for e in raw["edges"]]
    counts = raw["counts"]
    series = [{"name": str(name), "counts": [int(c) for c in counts[name]]} for name in raw["labels"]]
    xlabel = "cosine with unembedding" if raw.get("cosine") else "logit weight"
    payload: dict[str, Any] = {"feature": feature, "class": token_class, "edges": edges, "series": series,
                               "xlabel": xlabel, "yscale": yscale}
    payload["spec"] = histogram_spec(payload)
    return payload


def series_colours(names: list[str]) -> list[str]:
    """A class against the rest: blue against grey; more classes: a categorical palette, "other" grey."""
    if len(names) == 2:
        return [CATEGORICAL[0], GREY]
    out, k = [], 0
    for name in names:
        if name.startswith(("other", "not ", "no ")):
            out.append(GREY)
        else:
            out.append(CATEGORICAL[k % len(CATEGORICAL)])
            k += 1
    return out


def histogram_rows(payload: Mapping[str, Any]) -> list[dict]:
    """One row per non-empty (class, bin): ``start``, ``end``, ``group``, ``count``, ``order``
    (js/src/explorer/histogram.js ``histogramRows`` computes the same rows)."""
    edges = list(payload.get("edges") or [])
    rows = []
    for order, series in enumerate(payload.get("series") or []):
        for i, count in enumerate(series.get("counts") or []):
            if count > 0:
                rows.append({"start": edges[i], "end": edges[i + 1], "group": str(series.get("name", "")),
                             "count": count, "order": order})
    return rows


def histogram_spec(payload: Mapping[str, Any], *, width: int = 360, height: int = 170, title: str | None = None) -> dict:
    """The logit histogram of one feature split by a token class (no data, no theme; see module doc).

    Classes are layered, not stacked: each bar starts at 0, so every class reads on the
    square-root axis (Vega-Lite cannot stack on a non-linear scale); in each bin the larger
    count is drawn first and the smaller in front of it. The y scale is named on the axis.
    """
    names = [str(s.get("name", "")) for s in payload.get("series") or []]
    yscale = str(payload.get("yscale") or "sqrt")
    spec: dict[str, Any] = {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "width": width,
        "height": height,
        "data": {"name": DATASET},
        "mark": {"type": "bar", "binSpacing": 0, "strokeWidth": 0.5, "opacity": 0.9},
        "encoding": {
            "x": {"field": "start", "type": "quantitative", "bin": {"binned": True},
                  "title": payload.get("xlabel") or "logit weight", "axis": {"tickCount": 6}},
            "x2": {"field": "end"},
            "y": {"field": "count", "type": "quantitative", "stack": None, "title": Y_TITLES.get(yscale, "tokens"),
                  "scale": {"type": yscale}},
            "color": {"field": "group", "type": "nominal",
                      "scale": {"domain": names, "range": series_colours(names)},
                      "legend": {"orient": "top", "title": None, "labelLimit": 220}},
            "order": {"field": "count", "type": "quantitative", "sort": "descending"},
            "tooltip": [
                {"field": "group", "type": "nominal", "title": "class"},
                {"field": "start", "type": "quantitative", "title": "from", "format": ".3g"},
                {"field": "end", "type": "quantitative", "title": "to", "format": ".3g"},
                {"field": "count", "type": "quantitative", "title": "tokens"},
            ],
        },
    }
    if title:
        spec["title"] = title
    return spec


def theme_config(colours: Mapping[str, str] = LIGHT) -> dict:
    """A Vega-Lite ``config`` for a theme's colours (the front end builds the same from CSS)."""
    return {
        "font": FONT,
        "view": {"stroke": None},
        "axis": {"labelColor": colours["text2"], "titleColor": colours["text1"], "domainColor": colours["border"],
                 "tickColor": colours["border"], "gridColor": colours["grid"], "labelFont": FONT, "titleFont": FONT,
                 "titleFontWeight": "normal"},
        "legend": {"labelColor": colours["text1"], "titleColor": colours["text1"], "labelFont": FONT,
                   "symbolType": "square"},
        "title": {"color": colours["text1"], "font": FONT, "fontWeight": "normal"},
        "bar": {"stroke": colours["background"]},
    }


def themed(spec: Mapping[str, Any], datasets: Mapping[str, list] | None = None, colours: Mapping[str, str] = LIGHT,
           *, transparent: bool = False) -> dict:
    """``spec`` ready to render outside the view: a theme's ``config`` and background (``transparent``:
    none, for notebooks, whose chart view adds the page's theme), its datasets."""
    out = dict(spec)
    out["config"] = {**theme_config(colours), **dict(spec.get("config") or {})}
    out["background"] = "transparent" if transparent else colours["background"]
    if datasets:
        out["datasets"] = {**dict(spec.get("datasets") or {}), **{k: list(v) for k, v in datasets.items()}}
    return out


def histogram_figure(payload: Mapping[str, Any], **options: Any) -> dict:
    """The histogram spec with its data and the light theme (images, the static picture)."""
    return themed(histogram_spec(payload, **options), {DATASET: histogram_rows(payload)})

