"""The explorer's self-explanation panel: one ``sw.self_explain`` sweep per feature, as JSON.

A sweep (one batched nnsight generation over the sweep's scales) is computed once per
feature and cached; moving the steering slider only picks another row of it.

Scales. The sweep's scales and the slider's are both multiples of the feature's decoder
direction ``d``, but they are used differently: steering ADDS ``scale * d`` to the
residual stream at the SAE's hook, at every position; self-explanation REPLACES the
residual at the prompt's placeholder token, entering an early block, by ``scale * d``. The
same number therefore means different things, so the panel matches a slider scale to the
sweep row whose patch is as large, relative to the residual stream where it goes (median
norm at the injection block over the self-explanation prompt), as the steering vector is
relative to the residual stream at the hook (median norm over a reference sentence):
``sweep scale = |slider scale| * factor`` with ``factor = injection norm / hook norm``
(1 when the hook's norm is unknown, e.g. remote-only models). The sweep explains ``+d``
only, so a negative slider scale shows the row of the same size; slider scales beyond
the sweep show its last row. The view does the same selection (js/src/explorer/selfexplain.js)
so that saved views without a kernel follow their slider too.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Mapping

import numpy as np

from ..core.binding import Binding
from ..core.direction import Direction
from .generation import LRUCache

# Models larger than this do not explain each feature automatically (a button does it).
AUTO_MAX_PARAMETERS = 200_000_000
CURRENT_DATA = "sw_current"  # the chart's named dataset for the slider's row (set by the view)
CURRENT_COLOUR = "#e45756"
RESERVED = ("model", "sae", "feature", "features", "progress", "remote")
CHART_WIDTH, CHART_HEIGHT = 165, 62
YIELDING_BATCH = 12  # rows per batch of a sweep that lets steering generations run between batches


def n_parameters(model: Any) -> int:
    """Number of parameters of an nnsight (or torch) model."""
    module = getattr(model, "_module", model)
    try:
        return int(sum(p.numel() for p in module.parameters()))
    except Exception:  # not a torch module: unknown size, treated as large
        return AUTO_MAX_PARAMETERS + 1


def auto_default(model: Any) -> bool:
    """Explain each feature automatically on an accelerator, or on the CPU for models up to
    ``AUTO_MAX_PARAMETERS`` (a sweep of a GPT-2-small-sized model takes about a minute on 2 CPU
    cores); otherwise the panel offers a button."""
    from ..core.model import model_device

    try:
        on_accelerator = model_device(model).type not in ("cpu", "meta")
    except Exception:  # an unusual model: judge by size alone
        on_accelerator = False
    return on_accelerator or n_parameters(model) <= AUTO_MAX_PARAMETERS


def check_options(options: Any) -> dict:
    """Keyword arguments for ``sw.self_explain`` (the explorer supplies model, feature, remote)."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ValueError(
            "self_explain_options must be a dict of sw.self_explain keyword arguments, e.g. "
            f"{{'template': 'repeat', 'max_new_tokens': 12}}; got {type(options).__name__}")
    reserved = sorted(set(options) & set(RESERVED))
    if reserved:
        raise ValueError(f"self_explain_options must not set {reserved}: the explorer passes them itself")
    return dict(options)


def select(payload: Mapping[str, Any], slider_scale: float) -> dict:
    """``payload`` with ``current``: the sweep row for ``slider_scale`` (see the module docstring)."""
    if payload.get("status") != "done" or not payload.get("rows"):
        return dict(payload)
    target = abs(float(slider_scale)) * float(payload.get("factor") or 1.0)
    scales = np.asarray([row[0] for row in payload["rows"]], dtype=float)
    index = int(np.argmin(np.abs(scales - target)))
    row = payload["rows"][index]
    current = {"index": index, "scale": row[0], "explanation": row[1], "slider_scale": float(slider_scale),
               "target_scale": target}
    return {**payload, "current": current}


class SelfExplanations:
    """Self-explanation sweeps of one Binding's features, cached, as the panel's JSON."""

    def __init__(self, binding: Binding, options: Mapping[str, Any] | None = None, remote: Any = False,
                 hook_norm: Callable[[], float | None] | None = None, size: int = 64) -> None:
        self.binding = binding
        self.options = check_options(options)
        self.remote = remote
        self._hook_norm = hook_norm or (lambda: None)
        self._sweeps = LRUCache(size)  # feature -> (DataFrame, payload)
        self.runs = 0  # sweeps computed (not answered from the cache)

    @staticmethod
    def _key(target: Any) -> Any:
        return ("direction", target.digest(), target.name) if isinstance(target, Direction) else int(target)

    def cached(self, target: Any) -> dict | None:
        hit = self._sweeps.get(self._key(target))
        return None if hit is None else hit[1]

    def frame(self, target: Any) -> Any:
        """The ``sw.self_explain`` DataFrame of ``target`` (computed now if not cached)."""
        hit = self._sweeps.get(self._key(target))
        if hit is None:
            self.compute(target)
            hit = self._sweeps.get(self._key(target))
        return hit[0]

    def compute(self, target: Any, options: Mapping[str, Any] | None = None,
                between_batches: Callable[[], None] | None = None) -> dict:
        """The sweep of ``target`` (a feature index or an ``sw.Direction``; one batched generation),
        cached. ``options`` (e.g. a snapshot's) override the explorer's ``sw.self_explain`` options
        for this sweep only; such sweeps are not cached."""
        if not options:
            hit = self._sweeps.get(self._key(target))
            if hit is not None:
                return hit[1]
        from ..self_explanation.explain import self_explain

        merged = {**self.options, **check_options({k: v for k, v in (options or {}).items() if k != "progress"})}
        start = time.perf_counter()
        if between_batches is not None:  # small batches, so that steering can run between them
            merged.setdefault("batch_size", YIELDING_BATCH)
        df = self_explain(self.binding, features=[target], progress=False, remote=self.remote,
                          between_batches=between_batches, **merged)
        self.runs += 1
        label = df["feature"].iloc[0]
        payload = self.payload(df, label, time.perf_counter() - start, mapped=df.attrs.get("mapped"))
        if not options:
            self._sweeps.put(self._key(target), (df, payload))
        return payload

    def payload(self, df: Any, feature: Any, seconds: float = 0.0, mapped: bool | None = None) -> dict:
        """The panel's JSON for ``feature``'s rows of a ``sw.self_explain`` DataFrame (without
        the slider's row; see ``select``). ``explanation`` and ``scale`` are the chosen row's."""
        from ..self_explanation.explain import best_explanations

        attrs = dict(df.attrs)
        if "feature" in df.columns and len(set(df["feature"])) > 1:
            df = df[df["feature"] == feature]
        min_scale = attrs.get("min_scale")
        if isinstance(min_scale, Mapping):
            min_scale = min_scale.get(feature)
        hook_norm = self._hook_norm()
        factor = float(attrs["reference_norm"]) / hook_norm if hook_norm else 1.0
        chosen = int(np.flatnonzero(df["chosen"].to_numpy())[0])
        defaults = df["default_answer"] if "default_answer" in df else [False] * len(df)
        rows = [[float(s), str(e), _number(c), bool(d)]
                for s, e, c, d in zip(df["scale"], df["explanation"], df["composite"], defaults)]
        binding = self.binding
        if mapped is None:
            mapped = self.options.get("layer_map") is not None
        return {
            "feature": feature if isinstance(feature, str) else int(feature),
            "status": "done",
            "unpatched": str(attrs.get("unpatched_explanation", "")),
            "zero": str(attrs.get("zero_explanation", "")),
            "rows": rows,
            "chosen": chosen,
            "explanation": "" if rows[chosen][3] else rows[chosen][1],  # a default answer is no explanation
            "scale": rows[chosen][0],
            "best": best_explanations(df),
            "failed": bool(df["failed"].iloc[0]),
            "factor": factor,
            "matched_by": "relative size" if hook_norm else "value",
            "min_scale": _number(min_scale),
            "layer": int(attrs["layer"]),
            "probe_layer": int(attrs["probe_layer"]),
            "hook": f"{binding.site}[{binding.layer}]",
            "prompt": str(attrs["prompt"]),
            "mapped": bool(mapped),
            "chart": chart_spec(df),
            "seconds": round(seconds, 3),
        }


def chart_spec(df: Any) -> dict | None:
    """Vega-Lite spec of the sweep's metric curves (``self_explanation_chart``), as a compact
    2 x 2 grid (each metric's name as its panel's title, "sweep scale" under the bottom row), with a
    rule on every panel for the slider's row: its data is the named dataset ``sw_current``,
    which the view updates as the slider moves (no new spec per move)."""
    from ..self_explanation.chart import self_explanation_chart

    try:
        spec = self_explanation_chart(df, width=CHART_WIDTH, height=CHART_HEIGHT).to_dict(validate=False)
    except Exception:  # the panel still shows the explanations
        return None
    panels = spec.pop("vconcat", None)
    if panels is None:
        return spec
    rule = {"data": {"name": CURRENT_DATA}, "mark": {"type": "rule", "color": CURRENT_COLOUR, "strokeWidth": 2},
            "encoding": {"x": {"field": "scale", "type": "quantitative"}}}
    for i, panel in enumerate(panels):
        layers = panel.get("layer")
        if not isinstance(layers, list) or not layers:
            continue
        encoding = layers[0].get("encoding", {})
        y, x = encoding.get("y", {}), encoding.get("x", {})
        if y.get("title"):
            panel["title"] = {"text": y["title"], "anchor": "start", "fontSize": 11, "fontWeight": "normal"}
            y["title"] = None
        if x:
            x["title"] = "sweep scale" if i >= len(panels) - 2 else None  # the bottom row's
        layers.append(rule)
    spec["concat"], spec["columns"] = panels, 2
    spec.setdefault("datasets", {})[CURRENT_DATA] = []
    return spec


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
