"""Vega-Lite specs of the task views, built once here: the layer sweep (NLL and accuracy against
the layer of extraction and insertion, the seed's chart) and the task features (a bar per feature).

Like ``saewidgets.logit_lens.charts``, a spec holds no data and no theme: its data is a named
dataset (``sweep`` / ``features``) and the front end adds the page's colours; ``figure`` adds the
light theme and the rows for altair and images.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..logit_lens.charts import CATEGORICAL, GREY, themed

SWEEP = "sweep"
FEATURES = "features"
METHOD_LABELS = {
    "task_vector": "task vector",
    "reconstruction": "SAE reconstruction of TV",
    "on_reconstruction": "TV on SAE reconstructions",
    "ito": "ITO",
    "cleanup": "gradient cleanup",
}
BASELINE_LABELS = {"zero_shot": "zero-shot", "few_shot": "few-shot"}
# Methods measured at the same layer sit side by side (the tooltip gives the layer itself).
OFFSETS = {"task_vector": 0.0, "reconstruction": -0.16, "on_reconstruction": -0.08, "ito": 0.08, "cleanup": 0.16}
SHAPES = {"task_vector": "circle", "reconstruction": "square", "on_reconstruction": "triangle-up", "ito": "diamond",
          "cleanup": "cross"}
ROLE_COLOURS = {"executor": CATEGORICAL[0], "detector": CATEGORICAL[1], "both": CATEGORICAL[4], "other": GREY}


def sweep_spec(methods: Sequence[str], *, width: int = 320, height: int = 150) -> dict:
    """Two panels over the layer (NLL, accuracy): a line per method, dashed rules for the
    zero-shot and few-shot levels. Rows: ``{layer, x, method, label, nll, accuracy, l0, kind}``
    with ``kind`` "vector" or "baseline" (baselines have no layer); ``x`` is the layer moved a
    little per method so that methods at one layer do not hide each other."""
    labels = [METHOD_LABELS.get(m, m) for m in methods]
    legend = {"orient": "top", "columns": 3, "labelLimit": 220}
    colour = {"field": "label", "type": "nominal", "title": None,
              "scale": {"domain": labels, "range": list(CATEGORICAL[: len(labels)])}, "legend": legend}
    shape = {"field": "label", "type": "nominal", "title": None,
             "scale": {"domain": labels, "range": [SHAPES.get(m, "circle") for m in methods]}, "legend": legend}

    def panel(metric: str, title: str, y_scale: dict) -> dict:
        tooltip = [{"field": "label", "type": "nominal", "title": "method"},
                   {"field": "layer", "type": "quantitative", "title": "layer"},
                   {"field": "nll", "type": "quantitative", "title": "NLL", "format": ".3f"},
                   {"field": "accuracy", "type": "quantitative", "title": "accuracy", "format": ".0%"},
                   {"field": "l0", "type": "quantitative", "title": "L0"}]
        vectors = {"filter": "datum.kind === 'vector'"}
        x = {"field": "x", "type": "quantitative", "title": "layer (resid_pre; extracted and inserted there)",
             "axis": {"tickMinStep": 1, "format": "d"}}
        return {
            "width": width, "height": height,
            "layer": [
                {"transform": [vectors], "mark": {"type": "line"},
                 "encoding": {"x": x, "y": {"field": metric, "type": "quantitative", "title": title, "scale": y_scale},
                              "color": colour}},
                {"transform": [vectors], "mark": {"type": "point", "size": 70, "filled": True, "opacity": 0.95},
                 "encoding": {"x": x, "y": {"field": metric, "type": "quantitative"}, "color": colour, "shape": shape,
                              "tooltip": tooltip}},
                {"transform": [{"filter": "datum.kind === 'baseline'"}],
                 "mark": {"type": "rule", "strokeDash": [5, 4], "color": GREY},
                 "encoding": {"y": {"field": metric, "type": "quantitative"},
                              "tooltip": [{"field": "label", "type": "nominal", "title": "baseline"},
                                          {"field": metric, "type": "quantitative", "format": ".3f"}]}},
                {"transform": [{"filter": "datum.kind === 'baseline'"}],
                 "mark": {"type": "text", "align": "right", "dx": -3, "dy": -6, "color": GREY, "fontSize": 10},
                 "encoding": {"y": {"field": metric, "type": "quantitative"}, "x": {"value": "width"},
                              "text": {"field": "label"}}},
            ],
        }

    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "data": {"name": SWEEP},
        "vconcat": [panel("nll", "NLL of the answer (nats)", {"zero": True}),
                    panel("accuracy", "accuracy (greedy exact match)", {"domain": [0, 1]})],
        "resolve": {"scale": {"color": "shared"}},
    }


def sweep_rows(frame: Any) -> list[dict]:
    """The sweep DataFrame as the chart's rows (JSON-ready: NaN as None)."""
    rows = []
    for record in frame.to_dict("records"):
        row = {}
        for key in ("layer", "method", "label", "nll", "accuracy", "l0", "kind"):
            value = record.get(key)
            row[key] = None if value is None or (isinstance(value, float) and value != value) else value
        if row["layer"] is not None:
            row["layer"] = int(row["layer"])
            row["x"] = row["layer"] + OFFSETS.get(str(row["method"]), 0.0)
        if row["l0"] is not None:
            row["l0"] = int(row["l0"])
        rows.append(row)
    return rows


def features_spec(*, width: int = 320, bar: int = 18) -> dict:
    """A horizontal bar per feature (its weight), coloured by its measured role, labelled by its
    label or explanation. Rows: ``{feature, name, weight, role, label, selected}``; the bars of
    unselected features are faded. Clicking a bar is the view's business (signal ``pick``)."""
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "data": {"name": FEATURES},
        "width": width,
        "height": {"step": bar},
        "params": [{"name": "pick", "select": {"type": "point", "fields": ["feature"], "on": "click"}}],
        "mark": {"type": "bar", "cursor": "pointer"},
        "encoding": {
            "y": {"field": "name", "type": "nominal", "sort": {"field": "weight", "order": "descending"},
                  "title": None, "axis": {"labelLimit": 200}},
            "x": {"field": "weight", "type": "quantitative", "title": "weight (activation)"},
            "color": {"field": "role", "type": "nominal", "title": None,
                      "scale": {"domain": list(ROLE_COLOURS), "range": list(ROLE_COLOURS.values())},
                      "legend": {"orient": "top"}},
            "opacity": {"condition": {"test": "datum.selected", "value": 1.0}, "value": 0.3},
            "tooltip": [{"field": "feature", "type": "quantitative", "title": "feature"},
                        {"field": "weight", "type": "quantitative", "format": ".3f"},
                        {"field": "role", "type": "nominal"},
                        {"field": "label", "type": "nominal"}],
        },
    }


def feature_name(feature: int, label: str | None) -> str:
    return f"#{feature} {label}" if label else f"#{feature}"


def figure(spec: Mapping[str, Any], dataset: str, rows: list[dict], *, transparent: bool = False) -> dict:
    """``spec`` with its rows and the light theme (images, altair; ``transparent`` for notebooks,
    whose chart view adds the page's theme)."""
    return themed(spec, {dataset: rows}, transparent=transparent)


def chart(spec: Mapping[str, Any], dataset: str, rows: list[dict]) -> Any:
    """An ``sw.Chart`` (shown offline by the bundled Vega; ``.save`` writes PNG/SVG/PDF)."""
    from ..chart import Chart

    return Chart(figure(spec, dataset, rows, transparent=True))


def altair_chart(spec: Mapping[str, Any]) -> Any:
    """An altair chart of a full Vega-Lite spec (with data and theme); compound specs too."""
    import altair as alt

    if "vconcat" in spec:
        return alt.VConcatChart.from_dict(dict(spec))
    if "layer" in spec:
        return alt.LayerChart.from_dict(dict(spec))
    return alt.Chart.from_dict(dict(spec))


def feature_rows(features: Mapping[int, float], labels: Mapping[int, str] | None = None,
                 roles: Mapping[int, str] | None = None, selected: Any = None) -> list[dict]:
    """The bar chart's rows: one per feature (``{feature, name, label, weight, role, selected}``)."""
    labels, roles = dict(labels or {}), dict(roles or {})
    chosen = set(features if selected is None else selected)
    return [{"feature": int(f), "name": feature_name(int(f), labels.get(f)), "label": labels.get(f) or "",
             "weight": float(w), "role": roles.get(f, "other"), "selected": f in chosen} for f, w in features.items()]
