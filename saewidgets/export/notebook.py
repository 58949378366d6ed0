"""Notebooks to HTML that shows saewidgets views with no kernel and no network.

nbconvert renders a widget output through @jupyter-widgets/html-manager fetched from a
CDN (and loads require.js and MathJax from CDNs too). Here every saewidgets output whose
state the notebook saved becomes a self-contained view instead: its saved state plus the
widget's own front-end module, inline, rendered by a small bootstrap script. The
template drops the CDN scripts. Use from Python (``offline_html``) or the command line::

    python -m saewidgets.export notebook.ipynb            # writes notebook.html
    jupyter nbconvert --to saewidgets.export.OfflineHTMLExporter notebook.ipynb
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any, Mapping

from nbconvert.exporters import HTMLExporter
from nbconvert.preprocessors import Preprocessor
from traitlets import Unicode

from .page import bootstrap_block, module_blocks, view_block
from .saved import Saved
from .state import WIDGET_STATE_MIMETYPE, WIDGET_VIEW_MIMETYPE, anywidget_id, notebook_widget_states

TEMPLATES = Path(__file__).parent / "templates"


def is_saewidgets_view(view: Mapping) -> bool:
    return anywidget_id(view).startswith("saewidgets.")


class OfflineWidgetsPreprocessor(Preprocessor):
    """Replace saved saewidgets widget outputs by inline, kernel-less views.

    The first such output also carries each widget module (once) and the bootstrap
    script; the replaced models leave ``metadata.widgets``, which is removed when empty
    (so nbconvert adds no CDN widget loader).
    """

    select = Unicode("saewidgets", help="'saewidgets': only saewidgets views; 'all': every anywidget").tag(config=True)
    other_widgets = Unicode(
        "text",
        help="other widget outputs (progress bars, sliders): 'text' shows their text form (offline); "
        "'keep' keeps them, rendered by the CDN widget loader (needs a network)",
    ).tag(config=True)

    def _selected(self, view: Mapping) -> bool:
        if self.select == "all":
            return bool(view.get("state", {}).get("_esm")) and view.get("model_module") == "anywidget"
        return is_saewidgets_view(view)

    def preprocess(self, nb: Any, resources: dict) -> tuple[Any, dict]:
        views = {mid: v for mid, v in notebook_widget_states(nb).items() if self._selected(v)}
        found = [
            (output, views[model_id])
            for cell in nb.get("cells", []) if cell.get("cell_type") == "code"
            for output in cell.get("outputs", [])
            if (model_id := (output.get("data", {}).get(WIDGET_VIEW_MIMETYPE) or {}).get("model_id")) in views
        ]
        missing = [
            output for cell in nb.get("cells", []) if cell.get("cell_type") == "code"
            for output in cell.get("outputs", [])
            if (model_id := (output.get("data", {}).get(WIDGET_VIEW_MIMETYPE) or {}).get("model_id"))
            and model_id not in views and "saewidgets-static" in str(output.get("data", {}).get("text/html", ""))
        ]
        for i, (output, view) in enumerate(found):
            parts = [view_block(without_stale_error(view))]
            if i == 0:  # modules and the bootstrap once, with the first view
                parts += [module_blocks([v for _, v in found]), bootstrap_block()]
            output["data"] = {"text/html": "\n".join(parts), "text/plain": output["data"].get("text/plain", "")}
        for cell in nb.get("cells", []):
            for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
                _static_chart(output)
        if self.other_widgets == "text":
            for cell in nb.get("cells", []):
                for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
                    data = output.get("data", {})
                    if WIDGET_VIEW_MIMETYPE in data:
                        data.pop(WIDGET_VIEW_MIMETYPE)
                        if not data:
                            data["text/plain"] = ""
        _prune_widget_state(nb)
        resources["saewidgets_keep_widget_loader"] = "widgets" in nb.get("metadata", {})
        resources["saewidgets_views"] = len(found)
        resources["saewidgets_missing_state"] = len(missing)
        return nb, resources


MISSING_STATE = (
    "{n} saewidgets view(s) in this notebook were saved without their widget state, so the page can only show "
    "the static picture taken when each was first displayed, not the state you left. In JupyterLab turn on "
    "Settings > Save Widget State Automatically (or run the command 'Save Widget State Automatically'), save the "
    "notebook again and export it again; or let the exporter run it: python -m saewidgets.export NOTEBOOK --execute"
)


class MissingWidgetState(UserWarning):
    """The notebook was saved without widget state: its saewidgets views export as static pictures."""


def without_stale_error(view: Mapping) -> dict:
    """A saved view with its error banner cleared: a shared page must not open on an old error."""
    out = dict(view)
    state = dict(out.get("state") or {})
    if state.get("error"):
        state["error"] = ""
    out["state"] = state
    return out


VEGA = re.compile(r"application/vnd\.(vegalite|vega)\.v\d+\+json")


def altair_html_spec(html: str) -> tuple[str, dict] | None:
    """The (kind, spec) inside altair's HTML output, whose script loads vega from a CDN; None if not one."""
    if "altair-viz-" not in html or "vega-embed" not in html:
        return None
    start = html.rfind("})({")
    if start < 0:
        return None
    try:
        spec, end = json.JSONDecoder().raw_decode(html, start + 3)
        options, _ = json.JSONDecoder().raw_decode(html, html.index("{", end))
    except (ValueError, json.JSONDecodeError):
        return None
    mode = options.get("mode", "vega-lite") if isinstance(options, dict) else "vega-lite"
    return ("vegalite" if mode == "vega-lite" else "vega"), spec


def _static_chart(output: Any) -> None:
    """Replace a Vega/Vega-Lite output (whose HTML form loads vega from a CDN) by an SVG drawn offline."""
    data = output.get("data", {})
    kind = next((m for m in data if VEGA.fullmatch(m)), None)
    if kind is not None:
        spec = data[kind]
    elif isinstance(data.get("text/html"), str) and (found := altair_html_spec(data["text/html"])):
        kind, spec = found
    else:
        return
    import vl_convert as vlc

    from .images import xml_safe

    spec = xml_safe(spec)
    try:
        if "vegalite" in kind:
            svg = vlc.vegalite_to_svg(spec, allowed_base_urls=[])
        else:
            svg = vlc.vega_to_svg(spec, allowed_base_urls=[])
    except Exception as error:  # keep the text form rather than a page that reaches for a CDN
        output["data"] = {"text/plain": f"(chart not rendered offline: {error})"}
        return
    output["data"] = {"image/svg+xml": svg, "text/plain": data.get("text/plain", "chart")}


def _prune_widget_state(nb: Any) -> None:
    """Keep only the saved models that the remaining widget outputs show (and what they reference)."""
    saved = (nb.get("metadata", {}).get("widgets") or {}).get(WIDGET_STATE_MIMETYPE)
    if not saved:
        return
    state = saved.get("state") or {}
    todo = [
        output["data"][WIDGET_VIEW_MIMETYPE].get("model_id")
        for cell in nb.get("cells", []) if cell.get("cell_type") == "code"
        for output in cell.get("outputs", []) if WIDGET_VIEW_MIMETYPE in output.get("data", {})
    ]
    keep: set[str] = set()
    while todo:
        model_id = todo.pop()
        if model_id in keep or model_id not in state:
            continue
        keep.add(model_id)
        todo += re.findall(r"IPY_MODEL_([0-9a-f]+)", json.dumps(state[model_id].get("state", {})))
    saved["state"] = {k: v for k, v in state.items() if k in keep}
    if not saved["state"]:
        nb["metadata"].pop("widgets", None)


class OfflineHTMLExporter(HTMLExporter):
    """HTML export with saewidgets views inline and no CDN scripts (``--to saewidgets.export.OfflineHTMLExporter``)."""

    export_from_notebook = "HTML (saewidgets, offline)"
    def __init__(self, **kw: Any) -> None:
        kw.setdefault("template_name", "saewidgets_offline")
        kw.setdefault("extra_template_basedirs", [str(TEMPLATES)])
        super().__init__(**kw)
        self.offline_widgets = OfflineWidgetsPreprocessor(parent=self)
        self.register_preprocessor(self.offline_widgets, enabled=True)


def _load(notebook: Any) -> tuple[Any, Path | None]:
    import nbformat

    if isinstance(notebook, (str, Path)):
        path = Path(notebook)
        if not path.is_file():
            raise ValueError(f"no notebook at {path}")
        return nbformat.read(path, as_version=4), path
    if isinstance(notebook, Mapping):
        return nbformat.from_dict(copy.deepcopy(dict(notebook))), None
    raise ValueError(f"expected a notebook path or a notebook dict, got {type(notebook).__name__}")


def offline_html(notebook: Any, path: str | Path | None = None, *, select: str = "saewidgets",
                 other_widgets: str = "text", execute: bool = False, timeout: int = 600) -> Saved | str:
    """Convert ``notebook`` (path or nbformat dict) to HTML that needs no kernel and no network.

    saewidgets views whose state the notebook saved (JupyterLab: Settings > Save Widget
    State Automatically; nbclient does it when it executes) render from that state,
    interactive within what they precomputed (``explorer.snapshot``). Other widgets (e.g.
    tqdm progress bars) show their text form (``other_widgets="keep"`` keeps them live,
    through the CDN widget loader: that needs a network). ``execute=True`` runs the notebook first
    (nbclient, in its own folder, widget state saved), so the page shows the state the code leaves.
    A notebook saved without widget state gives a ``MissingWidgetState`` warning saying what to do.
    Returns the HTML text, or writes it to ``path`` and returns a ``Saved`` (path and size).
    """
    if select not in ("saewidgets", "all"):
        raise ValueError(f"select must be 'saewidgets' or 'all', got {select!r}")
    if other_widgets not in ("text", "keep"):
        raise ValueError(f"other_widgets must be 'text' or 'keep', got {other_widgets!r}")
    nb, source = _load(notebook)
    if execute:
        nb = execute_notebook(nb, source.parent if source else Path.cwd(), timeout)
    exporter = OfflineHTMLExporter()
    exporter.offline_widgets.select = select
    exporter.offline_widgets.other_widgets = other_widgets
    resources = {"metadata": {"name": source.stem if source else "notebook"}}
    body, out = exporter.from_notebook_node(nb, resources=resources)
    if out.get("saewidgets_missing_state"):
        import warnings

        warnings.warn(MISSING_STATE.format(n=out["saewidgets_missing_state"]), MissingWidgetState, stacklevel=2)
    if path is None:
        return body
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = body.encode("utf-8")
    path.write_bytes(data)
    return Saved(path, len(data))


def execute_notebook(nb: Any, folder: Path, timeout: int = 600) -> Any:
    """Run ``nb`` top to bottom in ``folder`` with nbclient, keeping the widget state (as saving it
    in JupyterLab with widget state on would). A failing cell is a ValueError naming it."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    client = NotebookClient(nb, timeout=timeout, kernel_name=nb.metadata.get("kernelspec", {}).get("name", "python3"),
                            resources={"metadata": {"path": str(folder)}}, store_widget_state=True)
    try:
        client.execute()
    except CellExecutionError as error:
        raise ValueError(f"running the notebook failed: {str(error).splitlines()[-1] if str(error) else error}") from error
    return nb
