"""``ExportMixin``: snapshot, standalone HTML, chart images and a script-free fallback for a widget.

FeatureExplorer inherits it. It adds two synced traits, ``precomputed`` (JSON) and
``precomputed_data`` (packed arrays), that ``snapshot()`` fills so that a saved
notebook or an exported page answers the slider and the feature picker with no kernel.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import traitlets as t

from .saved import Saved


class ExportMixin(t.HasTraits):
    """Export methods for FeatureExplorer (see ``saewidgets.export``)."""

    if TYPE_CHECKING:  # provided by the widget this mixes into (FeatureExplorer)
        histogram: dict
        session: Any
        feature: int

        @property
        def target(self) -> Any: ...

        @property
        def self_explanation_current(self) -> dict: ...

        def hold_sync(self) -> Any: ...

    precomputed = t.Dict().tag(sync=True)
    precomputed_data = t.Bytes(b"").tag(sync=True)

    def snapshot(self, scales: Any = None, features: Any = None, **options: Any):
        """Precompute steered generations (and more) on a grid of scales, for use with no kernel.

        ``explorer.snapshot()`` stores 9 scales along the current feature's slider;
        ``snapshot(scales=[-40, -10, 0, 10, 40], features=[3, 7, 12])`` several features.
        Options: ``n_scales``, ``token_classes`` ("all" | "current" | names),
        ``self_explain``, ``batch_size``, ``progress``. Saved with the notebook's widget
        state and in ``save_html`` pages, where the slider then snaps to the grid.
        Returns a summary (features, scales, size, seconds).
        """
        from .snapshot import take_snapshot

        return take_snapshot(self, scales, features, **options)

    def clear_snapshot(self) -> None:
        """Drop the precomputed results."""
        with self.hold_sync():
            self.precomputed = {}
            self.precomputed_data = b""

    def save_html(self, path: str | Path, features: Any = None, *, scales: Any = None, title: str | None = None,
                  gallery: bool = False, **options: Any) -> Saved:
        """Write one self-contained HTML file (module, styles and data inline; works offline).

        Precomputes first (``snapshot(scales, features, **options)``) unless the stored
        snapshot already covers ``features``. ``gallery=True`` writes one section per
        feature instead of one view with a feature picker. Returns the path and size.
        """
        from .standalone import save_explorer_html

        return save_explorer_html(self, path, features=features, scales=scales, title=title, gallery=gallery,
                                  **options)

    def save_chart(self, path: str | Path, chart: str = "histogram", *, scale: float = 2.0, sweep: Any = None) -> Saved:
        """Save a chart of the current view as PNG, SVG or PDF (by suffix), offline.

        ``chart``: "histogram" (the logit histogram of the current target by token class) or
        "self_explanation" (its self-explanation metrics against scale: from ``sweep``, a
        DataFrame of ``sw.self_explain``, else the explorer's own sweep, computed if needed).
        The image renders the same Vega-Lite spec as the live view, in the light theme.
        """
        from .images import save_chart

        return save_chart(self.chart_spec(chart, sweep=sweep), path, scale=scale)

    def chart_spec(self, chart: str = "histogram", *, sweep: Any = None) -> dict:
        """The Vega-Lite spec of one of the view's charts, with its data and the light theme
        (the live view draws the same spec with the page's theme; see ``save_chart``)."""
        from ..logit_lens.charts import histogram_figure, themed

        if chart == "histogram":
            if not (self.histogram or {}).get("edges"):
                raise ValueError("the histogram is empty: choose a feature first (explorer.feature = ...)")
            return histogram_figure(self.histogram, width=420, height=180, title=_chart_title(self))
        if chart == "self_explanation":
            session = self.session
            if sweep is None:
                payload = session.self_explanation(self.target)
            else:
                if "feature" in sweep and self.feature not in set(sweep["feature"]):
                    raise ValueError(f"the sweep has no rows for feature {self.feature} (the explorer's current feature)")
                payload = session.explainer.payload(sweep, self.feature if "feature" in sweep else sweep["feature"].iloc[0])
            if not payload.get("chart"):
                raise ValueError("this self-explanation has no chart (its metrics could not be drawn)")
            current = [] if self.self_explanation_current.get("current") is None else \
                [{"scale": self.self_explanation_current["current"]["scale"]}]
            return themed(payload["chart"], {"sw_current": current})
        raise ValueError(f"unknown chart {chart!r}: use 'histogram' or 'self_explanation'")

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The widget view, plus a script-free ``text/html`` picture for renderers without widgets."""
        bundle = super()._repr_mimebundle_(**kwargs)  # type: ignore[misc]
        if not bundle:
            return bundle
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        try:
            from .static_view import static_explorer_html

            data = {**data, "text/html": static_explorer_html(self._static_state())}
        except Exception:  # a fallback must never break displaying the widget itself
            pass
        return data, metadata

    def _static_state(self) -> dict:
        names: Sequence[str] = ("title", "feature", "feature_info", "histogram", "generation", "self_explanation",
                                "precomputed", "scale")
        return {name: getattr(self, name, None) for name in names}


def _chart_title(explorer: Any) -> str:
    info = explorer.direction_info or {}
    name = info.get("name") if explorer.feature == -1 else f"Feature {explorer.feature}"
    return f"{name} · logit weights by {explorer.token_class}"
