"""A script-free HTML picture of an explorer's state, for renderers that show no widgets.

Notebook viewers that do not run widgets (GitHub, nbviewer or nbconvert for a notebook
saved without widget state) show an output's ``text/html`` instead. This module writes
that HTML from the explorer's traits: title, explanation, statistics, the logit
histogram (the live view's Vega-Lite spec, rendered offline by vl-convert as an image), the top
promoted and suppressed tokens, the baseline and steered continuations and the
self-explanation. Every model or tokenizer string is escaped; there is no script.
"""

from __future__ import annotations

import base64
import html
import math
from typing import Any, Mapping, Sequence

BOX = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;font-size:13px;color:#1f1f1f;" \
      "border:1px solid #d0d0d0;border-radius:6px;padding:8px 10px;max-width:1100px;background:#fff"
CELL = "padding:1px 8px 1px 0;text-align:left"
MONO = "font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace"


def xml_safe(text: str) -> str:
    from .images import xml_safe as safe

    return safe(str(text))


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: Any, digits: int = 3) -> str:
    """Numbers as the front end shows them (3 significant digits; exponent when huge or tiny)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if not isinstance(value, (int, float)):
        return esc(value)
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    magnitude = abs(value)
    if magnitude and (magnitude >= 1e5 or magnitude < 1e-3):
        return f"{value:.2e}"
    return f"{float(f'{value:.{digits}g}'):g}"


def visible_token(token: Any) -> str:
    return str(token).replace(" ", "·").replace("\n", "↵").replace("\t", "→")


def histogram_svg(histogram: Mapping, width: int = 420, height: int = 150) -> str:
    """The histogram as an image of the same Vega-Lite spec the live view draws (rendered by
    vl-convert, offline), with the light theme. An image, not inline SVG: sanitizers (JupyterLab's
    for untrusted outputs) keep data: images."""
    if len(histogram.get("edges") or []) < 2 or not histogram.get("series"):
        return ""
    from ..logit_lens.charts import histogram_figure
    from .images import chart_svg

    svg = chart_svg(histogram_figure(histogram, width=width, height=height))
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return f'<img src="data:image/svg+xml;base64,{data}" alt="logit weight histogram">'


def _token_table(caption: str, rows: Sequence) -> str:
    body = "".join(
        f'<tr><td style="{CELL};{MONO}" title="{esc(repr(str(token)))}">{esc(visible_token(token))}</td>'
        f'<td style="{CELL}">{fmt(value)}</td></tr>'
        for token, value in rows or []
    )
    return (
        f'<table style="border-collapse:collapse;margin-right:16px;vertical-align:top;display:inline-table">'
        f'<caption style="text-align:left;font-weight:600">{esc(caption)}</caption>{body}</table>'
    )


def _continuation(side: Mapping | None) -> str:
    return "".join(str(t) for t in (side or {}).get("tokens", []))


def _generation(generation: Mapping) -> str:
    if not generation:
        return ""
    prompt = esc(generation.get("prompt", ""))
    steer = ", ".join(f"#{f} × {fmt(s)}" for f, s in generation.get("features", [])) or "no features"
    column = (
        lambda title, side: f'<div style="flex:1;min-width:220px"><div style="font-weight:600">{esc(title)}</div>'
        f'<p style="white-space:pre-wrap;{MONO};margin:2px 0">{prompt}<span style="background:#e3f2fd">'
        f"{esc(_continuation(side))}</span></p></div>"
    )
    return (
        '<div style="display:flex;gap:12px;flex-wrap:wrap;margin-top:8px">'
        + column("Baseline", generation.get("baseline"))
        + column(f"Steered · {steer}", generation.get("steered"))
        + "</div>"
    )


def static_explorer_html(state: Mapping, note: str = "") -> str:
    """HTML (no script) of an explorer state: the traits as a dict (``widget.get_state()``)."""
    info = state.get("feature_info") or {}
    feature = info.get("feature", state.get("feature"))
    stats = "".join(
        f'<span style="margin-right:12px"><span style="color:#5f6368">{esc(k)}</span> {fmt(v)}</span>'
        for k, v in (info.get("stats") or {}).items()
    )
    explanation = f'<p style="margin:2px 0">{esc(info["explanation"])}</p>' if info.get("explanation") else ""
    self_expl = (state.get("self_explanation") or {}).get("explanation")
    self_block = (
        f'<div style="margin-top:8px"><span style="font-weight:600">Self-explanation</span> '
        f"<span>{esc(self_expl)}</span></div>" if self_expl else ""
    )
    precomputed = state.get("precomputed") or {}
    if precomputed.get("items"):
        features = ", ".join(f"#{f}" for f in precomputed["items"])
        note = note or f"Precomputed results saved for {features}."
    return (
        f'<div class="saewidgets-static" style="{BOX}">'
        f'<div style="border-bottom:1px solid #d0d0d0;padding-bottom:4px;margin-bottom:6px">'
        f'<strong>Feature explorer</strong> <span style="color:#5f6368">{esc(state.get("title", ""))}</span></div>'
        f'<div style="font-size:15px;font-weight:600">Feature {esc(feature)}</div>{explanation}'
        f'<div style="margin:4px 0">{stats}</div>'
        f'<div style="display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start">'
        f"<div>{histogram_svg(state.get('histogram') or {})}</div>"
        f"<div>{_token_table('Promoted', info.get('top_positive') or [])}"
        f"{_token_table('Suppressed', info.get('top_negative') or [])}</div>"
        f"</div>{_generation(state.get('generation') or {})}{self_block}"
        f'<p style="color:#5f6368;font-size:11px;margin:8px 0 0">Static picture of a saewidgets FeatureExplorer '
        f"as it was displayed. {esc(note)} Run the notebook for the live widget, or export it with "
        f"<code>python -m saewidgets.export NOTEBOOK.ipynb</code> for an interactive page that works offline.</p>"
        "</div>"
    )
