"""Precompute what a FeatureExplorer would show on a grid of scales, for views with no kernel.

``take_snapshot(explorer, ...)`` runs, for each chosen feature, the steered generation at
every scale of a grid (one batched nnsight ``generate`` call for all rows, chunked) and
reads the feature's logit-lens traits for every token class; with ``self_explain`` also
the feature's self-explanation sweep. The result goes into two synced traits: a JSON
document (``precomputed``) whose numeric arrays are references into one packed binary
buffer (``precomputed_data``). A saved notebook or an exported page then answers the
slider, the feature picker and the token-class menu from it (js/src/standalone/snapshot.js).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

from .packing import Packer
from .saved import human_size

FORMAT_VERSION = 1
DEFAULT_N_SCALES = 9
MAX_ROWS = 4096


@dataclass(frozen=True)
class SnapshotSummary:
    """What ``take_snapshot`` stored: features, scales per feature, token classes, size, time."""

    features: tuple[int, ...]
    n_scales: int
    n_classes: int
    json_bytes: int
    data_bytes: int
    seconds: float

    def __str__(self) -> str:
        return (
            f"precomputed {len(self.features)} feature(s) x {self.n_scales} scales x {self.n_classes} token "
            f"class(es) in {self.seconds:.1f} s: {human_size(self.json_bytes)} JSON + "
            f"{human_size(self.data_bytes)} packed arrays"
        )

    def __repr__(self) -> str:
        return f"SnapshotSummary({self})"


# -- grids ------------------------------------------------------------------------------
def round_scale(scale: float) -> float:
    """3 significant digits, as the slider rounds (js/src/explorer/symlog.js ``roundScale``)."""
    if scale == 0:
        return 0.0
    digits = max(0, 2 - math.floor(math.log10(abs(scale))))
    return round(scale, digits)


def symlog_grid(scale_range: dict, n: int = DEFAULT_N_SCALES) -> list[float]:
    """``n`` scales spread evenly along the explorer's symlog slider (0 included when ``n`` is odd)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 2:
        raise ValueError(f"n_scales must be an integer >= 2, got {n!r}")
    top = float(scale_range.get("max") or 100.0)
    linear = float(scale_range.get("linear") or top / 100)
    if not 0 < linear < top:
        linear = top / 100
    u = np.linspace(-1.0, 1.0, n)
    values = np.sign(u) * linear * np.expm1(np.abs(u) * math.log1p(top / linear))
    return sorted({round_scale(float(v)) for v in values})


def check_scales(scales: Any) -> list[float]:
    """A user grid: finite numbers, sorted, duplicates dropped."""
    if isinstance(scales, torch.Tensor):
        scales = scales.detach().reshape(-1).tolist()
    if isinstance(scales, (int, float, str, bytes)) or not isinstance(scales, Iterable):
        raise ValueError(f"scales must be a list of numbers, e.g. [-20, -5, 0, 5, 20]; got {scales!r}")
    values = []
    for value in scales:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(value):
            raise ValueError(f"scales must be finite numbers; got {value!r}")
        values.append(float(value))
    if not values:
        raise ValueError("scales is empty: give at least one scale")
    return sorted(set(values))


# -- what the explorer computes, through its session's public methods -------------------------
class ExplorerReader:
    """The explorer's own computations for any (feature, token class), without changing its state."""

    def __init__(self, explorer: Any) -> None:
        self.explorer = explorer
        self.session = explorer.session

    def target(self, feature: int) -> Any:
        """A feature index, or the explorer's raw direction for -1 (a direction explorer's item)."""
        return self.explorer.target if feature == -1 else feature

    def scale_range(self, feature: int) -> dict:
        return self.session.scale_range(self.target(feature))

    def feature_info(self, feature: int, token_class: str) -> dict:
        return self.session.feature_info(self.target(feature), token_class)

    def histogram(self, feature: int, token_class: str) -> dict:
        return self.session.histogram(self.target(feature), token_class)

    def token_string(self, token: int) -> str:
        return self.session.token_string(token)

    def self_explanations(self, features: list[int], how: Any, progress: bool) -> dict[int, dict]:
        """The ``self_explanation`` trait for each feature: the explorer's own sweep (``how`` True),
        a sweep with other ``sw.self_explain`` options (a dict), or the rows of a DataFrame it
        returned (features it lacks are swept with the explorer's options)."""
        out = {}
        for f in features:
            if hasattr(how, "columns"):
                if not {"feature", "scale", "explanation", "chosen", "composite"} <= set(how.columns):
                    raise ValueError("self_explain= takes True/False, a dict of sw.self_explain options, or its DataFrame")
                if f in set(how["feature"]):
                    out[f] = self.session.explainer.payload(how, f)
                    continue
                out[f] = self.session.self_explanation(f)
            elif isinstance(how, Mapping):
                out[f] = self.session.self_explanation(self.target(f), options=how)
            else:
                out[f] = self.session.self_explanation(self.target(f))
            out[f] = {**out[f], "feature": f, "precomputed": True}
        return out


# -- the snapshot ---------------------------------------------------------------------------
def take_snapshot(
    explorer: Any,
    scales: Any = None,
    features: Any = None,
    *,
    n_scales: int = DEFAULT_N_SCALES,
    token_classes: str | Sequence[str] = "all",
    self_explain: Any = True,
    batch_size: int = 64,
    progress: bool = True,
) -> SnapshotSummary:
    """Fill ``explorer.precomputed`` / ``precomputed_data`` for ``features`` x ``scales``.

    ``features``: indices (default: the current feature; the current one is always added).
    ``scales``: one grid for every feature (default: ``n_scales`` points along each
    feature's slider range); the current scale is added for the current feature, so the
    saved view keeps showing what it shows now. ``token_classes``: "all", "current" or a
    list of names (histograms and statistics per class). ``self_explain``: also store
    each feature's self-explanation (the chosen explanation and the one at every scale of
    ``sw.self_explain``'s own sweep): True, False, a dict of ``sw.self_explain`` options, or
    a DataFrame it already returned (reused; missing features are swept).
    """
    start = time.perf_counter()
    reader = ExplorerReader(explorer)
    current = explorer.feature
    listed = [] if features is None else [f for f in (features if isinstance(features, (list, tuple)) else [features])
                                            if not (f == -1 and current == -1)]  # -1: the explorer's direction
    chosen = list(dict.fromkeys([current, *(explorer.binding.check_features(listed) if listed else [])]))
    classes = _classes(explorer, token_classes)
    grids = _grids(explorer, reader, chosen, None if scales is None else check_scales(scales), n_scales)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(self_explain, (bool, dict, type(None))) and not hasattr(self_explain, "columns"):
        raise ValueError(
            "self_explain= takes True/False, a dict of sw.self_explain options, or the DataFrame it returned; "
            f"got {type(self_explain).__name__}"
        )

    generations = _steered_generations(explorer, reader, grids, batch_size, progress)
    wanted = self_explain is not False and self_explain is not None  # (a DataFrame has no truth value)
    explained = reader.self_explanations(chosen, self_explain, progress) if wanted else {}
    packer = Packer()
    baseline = generations.pop("baseline")
    items = {}
    for f in chosen:
        items[str(f)] = {
            "feature": f,
            "scales": grids[f],
            "traits": {"scale_range": reader.scale_range(f)},
            "histograms": {c: _pack_histogram(reader.histogram(f, c), packer) for c in classes},
            **_infos(reader, f, explorer.token_class, classes),
            "steered": [_pack_side(side, packer) for side in generations[f]],
        }
        if f in explained:
            items[str(f)]["self_explanation"] = explained[f]
    document = {
        "version": FORMAT_VERSION,
        "inputs": _inputs(explorer),
        "baseline": _pack_side(baseline, packer),
        "classes": classes,
        "items": items,
        "seconds": round(time.perf_counter() - start, 3),
    }
    data = packer.to_bytes()
    with explorer.hold_sync():
        explorer.precomputed_data = data
        explorer.precomputed = document
    return SnapshotSummary(
        features=tuple(chosen), n_scales=max(len(v) for v in grids.values()), n_classes=len(classes),
        json_bytes=len(json.dumps(document, separators=(",", ":"))), data_bytes=len(data),
        seconds=time.perf_counter() - start,
    )


def _grids(explorer: Any, reader: ExplorerReader, features: list[int], grid: list[float] | None,
           n_scales: int) -> dict[int, list[float]]:
    """The scales of each feature; the current scale joins the current feature's grid."""
    grids = {}
    for f in features:
        values = list(grid) if grid is not None else symlog_grid(reader.scale_range(f), n_scales)
        if f == explorer.feature and explorer.scale not in values:
            values = sorted({*values, float(explorer.scale)})
        grids[f] = values
    rows = sum(len(v) for v in grids.values())
    if rows > MAX_ROWS:
        raise ValueError(
            f"{len(features)} features x their scales make {rows} generations (limit {MAX_ROWS}): "
            "pass fewer features or a smaller n_scales/scales"
        )
    return grids


def _classes(explorer: Any, token_classes: Any) -> list[str]:
    names = list(explorer.class_names)
    if token_classes == "all":
        return names
    if token_classes == "current":
        return [explorer.token_class]
    if isinstance(token_classes, str) or not isinstance(token_classes, Iterable):
        raise ValueError(f"token_classes must be 'all', 'current' or a list of class names; got {token_classes!r}")
    chosen = list(dict.fromkeys(token_classes))
    unknown = [c for c in chosen if c not in names]
    if unknown:
        raise ValueError(f"unknown token class(es) {unknown}; the explorer has {names}")
    if explorer.token_class not in chosen:
        chosen.insert(0, explorer.token_class)
    return chosen


def _inputs(explorer: Any) -> dict:
    return {
        "prompt": explorer.prompt,
        "max_new_tokens": explorer.max_new_tokens,
        "temperature": float(explorer.temperature),
        "seed": explorer.seed,
        "steering": [dict(e) for e in explorer.steering],
    }


def _infos(reader: ExplorerReader, feature: int, current: str, classes: list[str]) -> dict:
    """``feature_info`` per token class, stored once: the current class's in full (``info``), the
    others as their ``stats`` (``class_stats``) when nothing else differs, else in full (``infos``)."""
    base = reader.feature_info(feature, current)
    class_stats, full = {}, {}
    for c in classes:
        info = base if c == current else reader.feature_info(feature, c)
        if {k: v for k, v in info.items() if k != "stats"} == {k: v for k, v in base.items() if k != "stats"}:
            class_stats[c] = info.get("stats", {})
        else:
            full[c] = info
    return {"info": base, "class_stats": class_stats, **({"infos": full} if full else {})}


def _pack_histogram(histogram: dict, packer: Packer) -> dict:
    out = dict(histogram)
    if "edges" in out:
        out["edges"] = packer.add(out["edges"], "f4")
    if "series" in out:
        out["series"] = [
            {**s, "counts": packer.add(s["counts"], "u2" if max(s["counts"], default=0) < 65536 else "u4")}
            if "counts" in s else s
            for s in out["series"]
        ]
    return out


def _pack_side(side: Any, packer: Packer) -> dict:
    logprobs = [np.nan if v is None else v for v in side.logprobs]
    return {"tokens": list(side.tokens), "logprobs": packer.add(logprobs, "f2")}


def _steered_generations(explorer: Any, reader: ExplorerReader, grids: dict[int, list[float]], batch_size: int,
                         progress: bool) -> dict:
    """Baseline and steered continuations for every (feature, scale), as ``Side`` objects: the
    session's ``steered_grid``, the same engine, edit and decoding as the live view and ``sw.steer``."""
    session = explorer.session
    decoding = session.decoding(explorer.max_new_tokens, float(explorer.temperature), explorer.seed)
    out: dict[Any, Any] = {}
    bar = _progress(sum(len(v) for v in grids.values()), progress)
    for f, scales in grids.items():
        target = reader.target(f)
        request = session.request(explorer.prompt, decoding, list(explorer.steering), target, 0.0)
        baseline, sides = session.steered_grid(request, target, scales, batch_size=batch_size)
        out["baseline"] = baseline
        out[f] = sides
        if bar is not None:
            bar.update(len(scales))
    if bar is not None:
        bar.close()
    return out


def _number(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="precomputing generations", unit="gen")
