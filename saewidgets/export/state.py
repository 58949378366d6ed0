"""Widget state in the ipywidgets embed format (the one notebooks save), from Python or from a notebook.

A *view state* is ``{"model_id", "model_name", "model_module", "model_module_version",
"state", "buffers"}`` where ``buffers`` is a list of ``{"path": [...], "encoding":
"base64", "data": "..."}``: binary traits travel as base64, as in saved notebooks.
"""

from __future__ import annotations

from typing import Any, Mapping

WIDGET_STATE_MIMETYPE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW_MIMETYPE = "application/vnd.jupyter.widget-view+json"


def widget_view_state(widget: Any) -> dict:
    """The full state of a live widget (no defaults dropped), binary traits base64-encoded."""
    if not hasattr(widget, "_get_embed_state"):
        raise ValueError(f"{type(widget).__name__} is not an ipywidgets widget")
    view = widget._get_embed_state(drop_defaults=False)
    return {"model_id": widget.model_id, **view}


def notebook_widget_states(notebook: Mapping) -> dict[str, dict]:
    """model_id -> saved view state, from a notebook's ``metadata.widgets`` (empty if none were saved)."""
    saved = (notebook.get("metadata", {}).get("widgets") or {}).get(WIDGET_STATE_MIMETYPE) or {}
    return {mid: {"model_id": mid, **view} for mid, view in (saved.get("state") or {}).items()}


def anywidget_id(view: Mapping) -> str:
    """The anywidget class id (``module.Class``) of a saved view state, or "" for other widgets."""
    return str(view.get("state", {}).get("_anywidget_id", ""))


def without_esm(view: Mapping) -> dict:
    """A copy of ``view`` without the ``_esm``/``_css`` sources (pages ship those once)."""
    state = {k: v for k, v in view.get("state", {}).items() if k not in ("_esm", "_css")}
    return {**view, "state": state}
