"""``Chart``: a Vega-Lite spec as a value, drawn offline wherever it is shown.

The package's chart functions (``sw.logit_histogram_chart``, ``sw.self_explanation_chart``) return
one: ``.spec`` / ``.to_dict()`` is the spec, ``.save("x.png" | ".svg" | ".pdf")`` renders it with
vl-convert (offline), ``.to_altair()`` gives an altair chart to compose further. In a notebook it
displays through the package's chart view (``saewidgets.widgets.chart``): the bundled Vega, the
page's theme, no CDN; renderers without widgets show an SVG picture of the same spec.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping


class Chart:
    """One Vega-Lite spec (with its data), ready to show, save or extend."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        if not isinstance(spec, Mapping) or not spec:
            raise ValueError("a Chart needs a Vega-Lite spec (a non-empty dict)")
        self.spec = dict(spec)

    def to_dict(self) -> dict:
        """The Vega-Lite spec (a copy)."""
        return copy.deepcopy(self.spec)

    def to_altair(self) -> Any:
        """The spec as an altair chart (``alt.Chart.from_dict``), to compose with other altair charts."""
        import altair as alt

        return alt.Chart.from_dict(self.to_dict(), validate=False)

    def save(self, path: str | Path, *, scale: float = 2.0) -> Any:
        """Write PNG, SVG or PDF (by suffix), rendered offline by vl-convert on a white background."""
        from .export.images import save_chart
        from .logit_lens.charts import LIGHT

        return save_chart({**self.spec, "background": LIGHT["background"]}, path, scale=scale)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        from .widgets.chart import ChartView  # display only: the chart itself is a plain value

        return ChartView(self.spec)._repr_mimebundle_(include=include, exclude=exclude)

    def __repr__(self) -> str:
        mark = self.spec.get("mark") or next((k for k in ("layer", "vconcat", "hconcat", "concat") if k in self.spec), "?")
        return f"Chart({mark!r}, {len(str(self.spec))} characters of Vega-Lite)"
