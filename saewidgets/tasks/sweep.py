"""The layer sweep: extract a task vector at every layer and insert it at the same layer, next to its
SAE versions at the SAE's layer(s): the seed's chart.

>>> sweep = sw.layer_sweep(model, sae, sw.icl_prompts(pairs, shots=6, n=16),
...                        sw.icl_prompts(pairs, shots=0, n=32, seed=1))
>>> sweep.frame        # one row per (method, layer): nll, accuracy, l0; baselines zero-shot / few-shot
>>> sweep.chart()      # NLL and accuracy against the layer (an sw.Chart; sweep.altair() for altair)

Methods: ``task_vector`` (every layer); at each SAE's layer ``reconstruction`` (the SAE's
reconstruction of the task vector, L0 = the encoder's), ``on_reconstruction`` (the task vector
collected on the SAE's reconstructions of the residuals), ``ito`` (gradient pursuit to ``l0``)
and ``cleanup`` (``sw.task_features(method="cleanup")``). The task vectors of every layer come
from one pass per batch of prompts, and every (method, layer, prompt) is scored in batched
passes (rows of different layers share a batch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from ..core.binding import Binding, bind
from ..core.model import load_model
from ..core.sae import SAE
from ..decomposition import decompose
from .charts import BASELINE_LABELS, METHOD_LABELS, SWEEP, altair_chart, chart, figure, sweep_rows, sweep_spec
from .evaluate import check_answer_tokens, prepare, summary
from .features import CleanupSettings, TaskFeatures, check_l0, cleanup
from .prompts import as_prompts, with_answers
from .runs import Variant, check_batch_size, check_insert, check_layer, n_layers, progress_bar, score
from .vector import check_position, resolve_bos, task_vectors

SWEEP_METHODS = ("task_vector", "reconstruction", "on_reconstruction", "ito", "cleanup")
SAE_METHODS = SWEEP_METHODS[1:]


@dataclass
class LayerSweep:
    """What ``layer_sweep`` measured: ``frame`` (method, label, layer, nll, accuracy, l0, kind),
    the vectors it inserted (``vectors[(method, layer)]``, ``sw.Direction``), the sparse codes
    (``codes[(method, layer)]``) and the settings."""

    frame: Any
    methods: tuple[str, ...]
    vectors: dict = field(default_factory=dict, repr=False)
    codes: dict = field(default_factory=dict, repr=False)
    settings: dict = field(default_factory=dict)

    def spec(self) -> dict:
        """The chart's Vega-Lite spec (no data, no theme)."""
        return sweep_spec(self.methods)

    def rows(self) -> list[dict]:
        return sweep_rows(self.frame)

    def figure(self) -> dict:
        """The spec with its data and the light theme."""
        return figure(self.spec(), SWEEP, self.rows())

    def chart(self) -> Any:
        """The seed's chart, NLL and accuracy against the layer (a line per method, baselines dashed),
        as an ``sw.Chart``: shown offline by the bundled Vega, ``.save("sweep.png")``."""
        return chart(self.spec(), SWEEP, self.rows())

    def altair(self) -> Any:
        """The same chart as an altair chart (to compose with others)."""
        return altair_chart(self.figure())

    def with_row(self, method: str, layer: int, nll: float, accuracy: float, l0: int | None = None,
                 vector: Any = None, code: Any = None) -> "LayerSweep":
        """A copy with one more measurement (e.g. a cleanup run later), replacing one of the same
        method and layer."""
        import pandas as pd

        frame = self.frame[~((self.frame["method"] == method) & (self.frame["layer"] == layer))]
        row = pd.DataFrame([{"method": method, "label": METHOD_LABELS.get(method, method), "layer": layer, "nll": nll,
                             "accuracy": accuracy, "l0": l0, "kind": "vector"}])
        frame = pd.concat([frame, row.astype(frame.dtypes.to_dict())], ignore_index=True)
        methods = self.methods if method in self.methods else (*self.methods, method)
        order = [m for m in SWEEP_METHODS if m in methods] + [m for m in methods if m not in SWEEP_METHODS]
        vectors, codes = dict(self.vectors), dict(self.codes)
        if vector is not None:
            vectors[(method, layer)] = vector
        if code is not None:
            codes[(method, layer)] = code
        return LayerSweep(frame, tuple(order), vectors, codes, dict(self.settings))

    def best(self, method: str = "task_vector", metric: str = "accuracy") -> Any:
        """The row of ``method`` with the best ``metric`` (highest accuracy, lowest NLL)."""
        rows = self.frame[self.frame["method"] == method]
        if rows.empty:
            raise ValueError(f"the sweep has no rows for {method!r}; it measured {list(self.methods)}")
        return rows.loc[rows[metric].idxmax() if metric == "accuracy" else rows[metric].idxmin()]


def sae_layers(model: Any, sae: Any) -> dict[int, SAE]:
    """``sae`` (an SAE, a Binding, a list of them, or ``{layer: SAE}``) as ``{layer: SAE}``, each bound."""
    if sae is None:
        return {}
    if isinstance(sae, (SAE, Binding)):
        items: Iterable[Any] = [sae]
    elif isinstance(sae, Mapping):
        items = list(sae.values())
    elif isinstance(sae, Sequence) and not isinstance(sae, (str, bytes)):
        items = list(sae)
    else:
        raise ValueError(f"sae must be an sw.SAE, a list of them or a {{layer: SAE}} dict, got {type(sae).__name__}")
    out: dict[int, SAE] = {}
    for item in items:
        binding = bind(model, item)
        if binding.site != "resid_pre":
            raise ValueError(f"the layer sweep inserts at resid_pre; an SAE reads {binding.site}[{binding.layer}]")
        if binding.layer in out:
            raise ValueError(f"two SAEs read resid_pre[{binding.layer}]; give one per layer")
        out[binding.layer] = binding.sae
    return out


def check_methods(methods: Any, has_sae: bool) -> tuple[str, ...]:
    methods = (methods,) if isinstance(methods, str) else tuple(methods)
    unknown = [m for m in methods if m not in SWEEP_METHODS]
    if unknown or not methods:
        raise ValueError(f"unknown sweep methods {unknown or methods!r}; use some of {SWEEP_METHODS}")
    if not has_sae:
        methods = tuple(m for m in methods if m not in SAE_METHODS)
        if not methods:
            raise ValueError(f"the methods {SAE_METHODS} need an SAE: pass sae=...")
    return methods


def layer_sweep(model: Any, sae: Any, prompts: Any, eval_prompts: Any = None, *, layers: Sequence[int] | None = None,
                methods: Sequence[str] = SWEEP_METHODS, position: str = "separator", insert: str = "replace",
                l0: int = 40, lam: float = 0.03, lr: float = 1e-2, steps: int = 1000, patience: int = 100,
                answer_tokens: int | None = None, cleanup_tokens: int = 3, prepend_bos: bool | None = None,
                batch_size: int = 64, progress: bool = True, remote: Any = False,
                cleaned: Mapping[int, TaskFeatures] | None = None) -> LayerSweep:
    """Task vectors of ``prompts`` extracted and inserted at each layer, scored on ``eval_prompts``.

    ``sae``: an SAE (or several, or ``{layer: SAE}``, or None for task vectors only): the SAE
    methods run at its layer. ``eval_prompts``: zero-shot prompts with answers (default: the
    queries of ``prompts`` asked zero-shot). ``layers``: default every block. ``answer_tokens``:
    the answer tokens the reported NLL counts (default all); ``cleanup_tokens`` those cleanup
    trains on. Cleanup's other settings as in ``sw.task_features``; ``cleaned={layer: TaskFeatures}``
    gives cleanup results already computed (``sw.task_features``) instead of running it again.
    """
    model = load_model(model)
    saes = sae_layers(model, sae)
    methods = check_methods(methods, bool(saes))
    position, insert = check_position(position), check_insert(insert)
    answer_tokens = check_answer_tokens(answer_tokens)
    batch_size = check_batch_size(batch_size)
    settings = CleanupSettings(lam, lr, steps, patience, cleanup_tokens)
    l0 = check_l0(l0)
    layers = list(range(n_layers(model))) if layers is None else [check_layer(model, layer) for layer in layers]
    if not layers:
        raise ValueError("layers is empty: give at least one block index")
    items = with_answers(as_prompts(prompts), "prompts")
    zero = with_answers(as_prompts(eval_prompts), "eval_prompts") if eval_prompts is not None else \
        [p.zero_shot() for p in items]
    bos = resolve_bos(prepend_bos, next(iter(saes.values()), None))
    sae_at = {layer: s for layer, s in saes.items()} if any(m in SAE_METHODS for m in methods) else {}
    wanted = sorted(set(layers) | set(sae_at))

    vectors = task_vectors(model, items, wanted, position=position, prepend_bos=bos, batch_size=batch_size,
                           remote=remote, reconstruct=sae_at if "on_reconstruction" in methods else None)
    inserted: dict[tuple[str, int], Any] = {}
    codes: dict[tuple[str, int], Any] = {}
    if "task_vector" in methods:
        for layer in layers:
            inserted[("task_vector", layer)] = vectors[layer]
    for layer, s in sae_at.items():
        tv = vectors[layer]
        if "reconstruction" in methods:
            codes[("reconstruction", layer)] = code = decompose(s, tv, "encode", include_bias=True)
            inserted[("reconstruction", layer)] = code.direction
        if "on_reconstruction" in methods:
            inserted[("on_reconstruction", layer)] = vectors[("on_reconstruction", layer)]
        if "ito" in methods:
            codes[("ito", layer)] = code = decompose(s, tv, "ito", l0=min(l0, s.d_sae), include_bias=True)
            inserted[("ito", layer)] = code.direction
        if "cleanup" in methods and cleaned and layer in cleaned:
            codes[("cleanup", layer)] = code = cleaned[layer]
            inserted[("cleanup", layer)] = code.direction
        elif "cleanup" in methods:
            features, recon, history, n = cleanup(model, s, tv.vector, [p.zero_shot() for p in items], settings,
                                                  insert=insert, bos=bos, batch_size=batch_size, progress=progress,
                                                  remote=remote)
            codes[("cleanup", layer)] = code = TaskFeatures(features, "cleanup", recon, tv.vector, s, True, layer=layer,
                                                            insert=insert, vector=tv, history=history, steps=n,
                                                            prepend_bos=bos)
            inserted[("cleanup", layer)] = code.direction

    keys = list(inserted)
    variants = [Variant()] + [Variant(layer, inserted[(m, layer)].vector, insert) for m, layer in keys]
    _, encoded = prepare(model, zero, bos)
    few_items, few_encoded = prepare(model, items, bos)
    total = len(variants) * len(encoded) + len(few_encoded)
    bar = progress_bar(total, "layer sweep", progress)
    tick = None if bar is None else bar.update
    try:
        scores = score(model, encoded, variants, zero[0].stop, batch_size=batch_size, remote=remote, progress=tick)
        few = score(model, few_encoded, [Variant()], items[0].stop, batch_size=batch_size, remote=remote, progress=tick)
    finally:
        if bar is not None:
            bar.close()
    records = []
    for name, (sc, v) in (("zero_shot", (scores, 0)), ("few_shot", (few, 0))):
        nll, acc = summary(sc, v, answer_tokens)
        records.append({"method": name, "label": BASELINE_LABELS[name], "layer": None, "nll": nll, "accuracy": acc,
                        "l0": None, "kind": "baseline"})
    for i, (method, layer) in enumerate(keys, start=1):
        nll, acc = summary(scores, i, answer_tokens)
        measured = codes.get((method, layer))
        l0_value = None if measured is None else measured.l0
        records.append({"method": method, "label": METHOD_LABELS[method], "layer": layer, "nll": nll,
                        "accuracy": acc, "l0": l0_value, "kind": "vector"})
    import pandas as pd

    frame = pd.DataFrame(records, columns=["method", "label", "layer", "nll", "accuracy", "l0", "kind"])
    frame["layer"] = frame["layer"].astype("Int64")
    frame["l0"] = frame["l0"].astype("Int64")
    return LayerSweep(frame, methods, inserted, codes, {
        "position": position, "insert": insert, "prepend_bos": bos, "layers": layers, "sae_layers": sorted(sae_at),
        "prompts": len(items), "eval_prompts": len(zero), "l0": l0, **vars(settings)})
