"""Standalone HTML files of a FeatureExplorer: one view with a picker, or a gallery of features."""

from __future__ import annotations

import base64
import copy
import datetime as _dt
from pathlib import Path
from typing import Any, Iterable, Mapping

from .packing import Packer, is_ref, unpack
from .page import inline_json, module_blocks, standalone_page
from .saved import Saved
from .state import widget_view_state

DATA_PATH = ["precomputed_data"]


def covers(explorer: Any, features: Iterable[int], scales: Any) -> bool:
    """Whether the stored snapshot already holds ``features`` (and, if given, exactly ``scales``)."""
    items = (explorer.precomputed or {}).get("items") or {}
    if explorer.precomputed.get("inputs", {}).get("prompt") != explorer.prompt:
        return False
    for f in features:
        item = items.get(str(f))
        if item is None:
            return False
        if scales is not None:
            from .snapshot import check_scales

            if not set(check_scales(scales)) <= set(item["scales"]):
                return False
    return True


def _repack(value: Any, data: bytes, packer: Packer) -> Any:
    """Copy ``value`` with its array references moved into ``packer``."""
    if is_ref(value):
        code = value["$a"][2]
        return packer.add(unpack(value, data), code)
    if isinstance(value, dict):
        return {k: _repack(v, data, packer) for k, v in value.items()}
    if isinstance(value, list):
        return [_repack(v, data, packer) for v in value]
    return value


def subset(document: dict, data: bytes, features: Iterable[int]) -> tuple[dict, bytes]:
    """The snapshot restricted to ``features``, with its own packed buffer."""
    packer = Packer()
    keep = {str(f) for f in features}
    out = {k: _repack(v, data, packer) for k, v in document.items() if k != "items"}
    out["items"] = {k: _repack(v, data, packer) for k, v in document["items"].items() if k in keep}
    return out, packer.to_bytes()


def _with_state(view: dict, changes: dict, data: bytes) -> dict:
    """A copy of an embed view state with ``changes`` and a new ``precomputed_data`` buffer."""
    out = copy.deepcopy(view)
    out["state"].update(changes)
    out["buffers"] = [b for b in out.get("buffers", []) if b.get("path") != DATA_PATH]
    out["buffers"].append({"path": DATA_PATH, "encoding": "base64", "data": base64.b64encode(data).decode("ascii")})
    out["state"].pop(DATA_PATH[0], None)
    return out


def class_info(item: dict, token_class: str) -> dict | None:
    """A snapshot item's ``feature_info`` for ``token_class`` (as js/src/standalone/snapshot.js builds it)."""
    if token_class in (item.get("infos") or {}):
        return item["infos"][token_class]
    if "info" not in item:
        return None
    stats = (item.get("class_stats") or {}).get(token_class)
    return {**item["info"], "stats": stats} if stats is not None else item["info"]


def feature_view(view: dict, feature: int, start_scale: float | None) -> dict:
    """The explorer's saved view switched to ``feature`` (one-feature snapshot), opened at the grid
    scale nearest ``start_scale`` (None: a middling positive one, so that steering shows)."""
    document = view["state"]["precomputed"]
    data = base64.b64decode(next(b["data"] for b in view.get("buffers", []) if b.get("path") == DATA_PATH))
    small, small_data = subset(document, data, [feature])
    item = unpack(small["items"][str(feature)], small_data)
    token_class = view["state"].get("token_class")
    histograms = item.get("histograms") or {}
    key = token_class if token_class in histograms else next(iter(histograms), None)
    if start_scale is None:
        positive = [s for s in item["scales"] if s > 0]
        start_scale = positive[len(positive) // 2] if positive else 0.0
    index = min(range(len(item["scales"])), key=lambda i: abs(item["scales"][i] - start_scale))
    baseline = unpack(small["baseline"], small_data)
    steering = [e for e in small["inputs"]["steering"] if e.get("feature") != feature]
    inputs = small["inputs"]
    changes = {
        "feature": feature,
        "scale": item["scales"][index],
        **item.get("traits", {}),
        "generation": {
            "id": f"snapshot-{feature}-{index}", "status": "done", "prompt": inputs["prompt"],
            "features": [[e["feature"], e["scale"]] for e in steering] + [[feature, item["scales"][index]]],
            "max_new_tokens": inputs["max_new_tokens"], "temperature": inputs["temperature"],
            "seed": inputs["seed"], "baseline": baseline, "steered": item["steered"][index], "precomputed": True,
        },
        "precomputed": small,
        "error": "",
        "search": "",
        "search_results": [],
    }
    if key is not None:
        changes["histogram"] = histograms[key]
        changes["feature_info"] = class_info(item, key) or view["state"].get("feature_info")
    if item.get("self_explanation"):
        explained = item["self_explanation"]
        changes["self_explanation"] = explained[index] if isinstance(explained, list) else explained
    return _with_state(view, changes, small_data)


def save_explorer_html(explorer: Any, path: str | Path, *, features: Any = None, scales: Any = None,
                       title: str | None = None, gallery: bool = False, **options: Any) -> Saved:
    """Write ``explorer`` as one offline HTML file; see ``ExportMixin.save_html``."""
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"{path.name!r}: save_html writes HTML; give a path ending in .html")
    chosen = explorer.binding.check_features(features) if features is not None else []  # (-1: a direction explorer's own)
    wanted = list(dict.fromkeys([explorer.feature, *chosen]))
    if not covers(explorer, wanted, scales):
        summary = explorer.snapshot(scales=scales, features=wanted, **options)
        if options.get("progress", True):
            print(summary)
    view = widget_view_state(explorer)
    name = title or explorer.title or "saewidgets feature explorer"
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    subtitle = f"Saved {stamp} with saewidgets: works offline, with precomputed results (no kernel)."
    if gallery:
        order = list(dict.fromkeys(chosen)) or [int(k) for k in explorer.precomputed["items"]]
        views: list[Mapping] = [feature_view(view, f, explorer.scale or None) for f in order]
        headings = [_heading(v) for v in views]
        page = standalone_page(views, title=name, subtitle=subtitle, headings=headings)
    else:
        views = [view]
        page = standalone_page(views, title=name, subtitle=subtitle)
    data = page.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    module = len(module_blocks([view]))
    snapshot = sum(len(inline_json(v["state"].get("precomputed", {}))) + sum(len(b["data"]) for b in v.get("buffers", []))
                   for v in views)
    return Saved(path, len(data), {"front-end module": module, "precomputed": snapshot,
                                   "rest": len(data) - module - snapshot})


def _heading(view: Mapping) -> str:
    info = view["state"].get("feature_info") or {}
    feature = view["state"].get("feature")
    explanation = info.get("explanation")
    return f"Feature {feature}" + (f" · {explanation}" if explanation else "")


def save_gallery(explorer: Any, features: Any, path: str | Path, **options: Any) -> Saved:
    """Several features in one offline HTML file, one section (a full, interactive view) each."""
    if features is None:
        raise ValueError("save_gallery needs features=[...] (the feature indices to show)")
    return save_explorer_html(explorer, path, features=features, gallery=True, **options)
