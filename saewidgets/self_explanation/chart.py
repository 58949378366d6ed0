"""Altair chart of a self-explanation sweep: one panel per metric against scale."""

from __future__ import annotations

from typing import Any

import pandas as pd

CHOSEN_LABEL = "chosen scale"  # the legend's names of the two rules
CURRENT_LABEL = "current scale"
CURRENT_COLOUR = "#e45756"
RULES = {CHOSEN_LABEL: ("black", [4, 3])}  # colour and dash of each keyed rule; others: CURRENT_*

METRICS = {
    "composite": "composite M",
    "self_similarity": "self-similarity",
    "cross_entropy": "cross-entropy vs baseline (nats)",
    "entropy_change": "entropy change (nats)",
}


def rule_scales(labels: list[str]) -> dict[str, dict]:
    """Vega-Lite scales of the rules' ``color`` and ``strokeDash`` over the field ``line``: the
    legend that names them (``CHOSEN_LABEL`` dashed black, any other label solid red)."""
    styles = [RULES.get(label, (CURRENT_COLOUR, [1, 0])) for label in labels]
    return {"color": {"domain": list(labels), "range": [colour for colour, _ in styles]},
            "strokeDash": {"domain": list(labels), "range": [dash for _, dash in styles]}}


def rule_encoding(labels: list[str]) -> dict[str, dict]:
    """The ``color`` and ``strokeDash`` encodings of a rule keyed in the legend (one legend, under the panels)."""
    legend = {"title": None, "orient": "bottom", "symbolType": "stroke"}
    return {channel: {"field": "line", "type": "nominal", "scale": scale, "legend": legend}
            for channel, scale in rule_scales(labels).items()}


def self_explanation_chart(df: pd.DataFrame, current_scale: float | None = None, feature: Any = None,
                           width: int = 360, height: int = 90, *, current_label: str = CURRENT_LABEL):
    """Metric curves of one feature against scale, stacked; the chosen scale is a dashed black
    rule, ``current_scale`` (e.g. a slider's value) a solid red rule, both named in a legend
    (``current_label``). Hover a point for its explanation. ``feature`` picks one when ``df``
    holds several."""
    import altair as alt

    missing = {"scale", "explanation", "chosen", *METRICS} - set(df.columns)
    if missing:
        raise ValueError(f"not a self_explain DataFrame: columns {sorted(missing)} are missing")
    labels = list(dict.fromkeys(df["feature"])) if "feature" in df else [None]
    if feature is None and len(labels) > 1:
        raise ValueError(f"the DataFrame holds {len(labels)} features; pick one with feature=... (one of {labels})")
    if feature is not None:
        if feature not in labels:
            raise ValueError(f"feature {feature!r} is not in the DataFrame (it has {labels})")
        df = df[df["feature"] == feature]
    if current_scale is not None:
        current_scale = float(current_scale)
    chosen = df.loc[df["chosen"], "scale"]
    data = df[["scale", "explanation", *METRICS]].copy()
    keys: list[str] = [CHOSEN_LABEL] * bool(len(chosen)) + [str(current_label)] * (current_scale is not None)
    key = rule_encoding(keys)
    panels = []
    for i, (column, title) in enumerate(METRICS.items()):
        x_title = "scale" if i == len(METRICS) - 1 else None
        base = alt.Chart(data).encode(x=alt.X("scale:Q", title=x_title))
        line = base.mark_line(point=True).encode(
            y=alt.Y(f"{column}:Q", title=title, scale=alt.Scale(zero=False)),
            tooltip=[alt.Tooltip("scale:Q", format=".3g"), alt.Tooltip(f"{column}:Q", format=".3g"),
                     alt.Tooltip("explanation:N")],
        )
        layers = [line]
        if len(chosen):
            layers.append(alt.Chart(pd.DataFrame({"scale": chosen.iloc[:1], "line": CHOSEN_LABEL})).mark_rule()
                          .encode(x="scale:Q", **key))
        if current_scale is not None:
            layers.append(alt.Chart(pd.DataFrame({"scale": [current_scale], "line": [current_label]}))
                          .mark_rule(strokeWidth=2).encode(x="scale:Q", **key))
        panels.append(alt.layer(*layers).properties(width=width, height=height))
    return alt.vconcat(*panels).resolve_scale(x="shared")
