"""Vega-Lite specs of the explorer's charts, built from its traits (for image export)."""

from __future__ import annotations

from typing import Any, Mapping

from .static_view import PALETTE

FONT = "system-ui, -apple-system, Segoe UI, Roboto, sans-serif"


def histogram_spec(histogram: Mapping, *, width: int = 420, height: int = 180, title: str | None = None) -> dict:
    """The explorer's logit histogram (stacked counts per token class) as a Vega-Lite spec.

    Mirrors js/src/explorer/histogram.js on a white background: ``histogram`` is the
    explorer's ``histogram`` trait (``edges``, ``series[{name, counts}]``, ``xlabel``, ``yscale``).
    """
    edges = list(histogram.get("edges") or [])
    series = list(histogram.get("series") or [])
    if len(edges) < 2 or not series:
        raise ValueError("the histogram is empty: choose a feature first (explorer.feature = ...)")
    rows = [
        {"start": edges[i], "end": edges[i + 1], "group": str(s.get("name", "")), "count": count, "order": k}
        for k, s in enumerate(series)
        for i, count in enumerate(s.get("counts", []))
        if count > 0
    ]
    names = [str(s.get("name", "")) for s in series]
    spec: dict[str, Any] = {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "width": width,
        "height": height,
        "background": "white",
        "data": {"values": rows},
        "mark": {"type": "bar", "binSpacing": 0, "stroke": "white", "strokeWidth": 0.3},
        "encoding": {
            "x": {"field": "start", "type": "quantitative", "bin": {"binned": True},
                  "title": histogram.get("xlabel") or "logit weight", "axis": {"tickCount": 6}},
            "x2": {"field": "end"},
            "y": {"field": "count", "type": "quantitative", "stack": "zero", "title": "tokens",
                  "scale": {"type": histogram.get("yscale") or "sqrt"}},
            "color": {"field": "group", "type": "nominal",
                      "scale": {"domain": names, "range": list(PALETTE[: len(names)])},
                      "legend": {"orient": "top", "title": None, "labelLimit": 220}},
            "order": {"field": "order", "type": "quantitative"},
        },
        "config": {"font": FONT, "view": {"stroke": None}, "axis": {"titleFontWeight": "normal"}},
    }
    if title:
        spec["title"] = title
    return spec
