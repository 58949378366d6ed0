"""Views that live on without a kernel: saved notebooks, standalone HTML, chart images.

>>> explorer.snapshot(features=[3, 7])            # precompute a grid of scales, saved with the widget
>>> explorer.save_html("feature.html")            # one offline file: JS, styles and data inline
>>> sw.export.save_gallery(explorer, [3, 7, 12], "gallery.html")
>>> explorer.save_chart("histogram.png")          # or .svg / .pdf, rendered offline by vl-convert
>>> sw.export.offline_html("analysis.ipynb", "analysis.html")   # nbconvert, with no CDN

Command line: ``python -m saewidgets.export NOTEBOOK.ipynb [-o OUT.html]``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "save_chart": ".images",
    "chart_bytes": ".images",
    "chart_svg": ".images",
    "save_gallery": ".standalone",
    "save_explorer_html": ".standalone",
    "offline_html": ".notebook",
    "MissingWidgetState": ".notebook",
    "OfflineHTMLExporter": ".notebook",
    "OfflineWidgetsPreprocessor": ".notebook",
    "take_snapshot": ".snapshot",
    "SnapshotSummary": ".snapshot",
    "Saved": ".saved",
    "ExportMixin": ".mixin",
    "static_explorer_html": ".static_view",
    "widget_view_state": ".state",
    "standalone_page": ".page",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'saewidgets.export' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
