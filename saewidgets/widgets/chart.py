"""``ChartView``: a Vega-Lite spec drawn by the package's bundled Vega (no CDN), in the page's theme.

The package's charts (``sw.logit_histogram_chart``, ``sw.self_explanation_chart``) display through
it, so they render offline in JupyterLab, Notebook 7, Voila and exported pages; ``text/html``
carries an SVG of the same spec (vl-convert) for renderers that show no widgets.
"""

from __future__ import annotations

import base64
from typing import Any, Mapping

import anywidget
import traitlets as t

from .explorer.widget import MISSING_ESM, STATIC


class ChartView(anywidget.AnyWidget):
    """One Vega-Lite spec, drawn with the page's theme colours (``spec`` is synced)."""

    _esm = STATIC / "widget.js" if (STATIC / "widget.js").is_file() else MISSING_ESM
    _css = STATIC / "widget.css" if (STATIC / "widget.css").is_file() else ""
    _kind = t.Unicode("chart").tag(sync=True)
    spec = t.Dict().tag(sync=True)

    def __init__(self, spec: Mapping[str, Any], **kwargs: Any) -> None:
        if not isinstance(spec, Mapping) or not spec:
            raise ValueError("ChartView needs a Vega-Lite spec (a dict), e.g. chart.to_dict()")
        super().__init__(spec=dict(spec), **kwargs)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        if not bundle:
            return bundle
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        try:
            from ..export.images import chart_svg
            from ..logit_lens.charts import LIGHT

            svg = chart_svg({**self.spec, "background": LIGHT["background"]})
            image = base64.b64encode(svg.encode()).decode("ascii")
            data = {**data, "text/html": f'<img src="data:image/svg+xml;base64,{image}" alt="chart">'}
        except Exception:  # the picture is a fallback: never break displaying the chart
            pass
        return data, metadata
