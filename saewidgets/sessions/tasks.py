"""``TaskSession``: everything a TaskExplorer computes, as plain Python (no traits, no threads).

Per task (a name and its (x, y) pairs) it draws the prompts once (``shots``-shot prompts for the
task vector, zero-shot prompts to score on) and caches, as JSON for the view: the overview
(zero-shot, few-shot, task-vector and cleaned accuracy at the SAE's layer), the layer sweep, the
cleaned task features with their measured roles (detector / executor, ``saewidgets.tasks.roles``)
and zero-shot completions with any subset of the features inserted.

>>> session = TaskSession(sw.bind(model, sae))          # the organism: its own ICL tasks
>>> session.overview("category"); session.features("category"); session.completions("category", [42])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

from ..core.binding import Binding
from ..core.direction import Direction
from ..engine import Decoding, Edit, Row, generate
from ..tasks.builtin import default_tasks
from ..tasks.charts import FEATURES, feature_name, features_spec
from ..tasks.evaluate import evaluate_task_vector
from ..tasks.features import TaskFeatures, task_features
from ..tasks.prompts import SEPARATOR, ICLPrompt, check_pairs, encode_all, icl_prompts
from ..tasks.roles import feature_roles
from ..tasks.runs import Variant, check_insert, score
from ..tasks.sweep import SWEEP_METHODS, LayerSweep, layer_sweep
from ..tasks.vector import check_position, resolve_bos, task_vector
from .checks import normalise_explanations
from .generation import LRUCache

MAX_CUSTOM_PAIRS = 500
SWEEP_ANSWER_TOKENS = 3  # the sweep's NLL counts what cleanup trains on
SWEEP_FIRST = tuple(method for method in SWEEP_METHODS if method != "cleanup")  # cleanup's row joins when it is done


@dataclass
class TaskData:
    """One task's prompts and what has been computed for it. The zero-shot prompts ask queries the
    few-shot prompts do not ask, when the task has at least 8 (or ``n_eval``) of them left."""

    name: str
    pairs: list[tuple[str, str]]
    few_shot: list[ICLPrompt]  # the task vector's prompts (``shots`` shots + a query)
    zero_shot: list[ICLPrompt]  # scored prompts (other queries, no shots)
    vector: Direction | None = None
    features: TaskFeatures | None = None
    roles: Any = None
    sweep: LayerSweep | None = None
    overview: dict | None = None
    completions: LRUCache = field(default_factory=lambda: LRUCache(64))


def parse_pairs(text: str, separator: str = SEPARATOR) -> list[tuple[str, str]]:
    """``x -> y`` lines (blank lines skipped) as pairs; a ValueError names a bad line."""
    if not isinstance(text, str):
        raise ValueError(f"the pairs must be text, got {type(text).__name__}")
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(separator)
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise ValueError(f"line {number} is not 'x {separator} y': {line[:60]!r}")
        pairs.append((parts[0].strip(), parts[1].strip()))
    if len(pairs) < 3:
        raise ValueError(f"give at least 3 'x {separator} y' lines (one per pair), got {len(pairs)}")
    if len(pairs) > MAX_CUSTOM_PAIRS:
        raise ValueError(f"at most {MAX_CUSTOM_PAIRS} pairs, got {len(pairs)}")
    return pairs


class TaskSession:
    """The computations behind one task explorer; see the module doc."""

    def __init__(self, binding: Binding, tasks: Mapping[str, Any] | None = None, *, shots: int = 6,
                 n_prompts: int = 16, n_eval: int = 32, n_show: int = 8, seed: int = 0, position: str = "separator",
                 insert: str = "replace", cleanup: Mapping[str, Any] | None = None, explanations: Any = None,
                 prepend_bos: bool | None = None, remote: Any = False) -> None:
        if binding.site != "resid_pre":
            raise ValueError(f"the task explorer inserts at resid_pre; this SAE reads {binding.site}")
        self.binding = binding
        for name, value, lo in (("shots", shots, 0), ("n_prompts", n_prompts, 1), ("n_eval", n_eval, 1),
                                ("n_show", n_show, 1), ("seed", seed, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise ValueError(f"{name} must be a whole number >= {lo}, got {value!r}")
        self.shots, self.n_prompts, self.n_eval, self.n_show, self.seed = shots, n_prompts, n_eval, n_show, seed
        self.position, self.insert, self.remote = check_position(position), check_insert(insert), remote
        self.cleanup = dict(cleanup or {})
        unknown = set(self.cleanup) - {"lam", "lr", "steps", "patience", "answer_tokens", "batch_size"}
        if unknown:
            raise ValueError(f"unknown cleanup settings {sorted(unknown)}; use lam, lr, steps, patience, answer_tokens, "
                             "batch_size")
        self.bos = resolve_bos(prepend_bos, binding.sae)
        self.explanations = normalise_explanations(explanations, binding.d_sae)
        self._pairs: dict[str, list[tuple[str, str]]] = {}
        self._data: dict[str, TaskData] = {}
        self._labels: dict[int, str] = {}
        for name, pairs in (default_tasks(binding.sae) if tasks is None else dict(tasks)).items():
            self.add_task(name, pairs)

    # -- tasks ---------------------------------------------------------------------------
    @property
    def task_names(self) -> list[str]:
        return list(self._pairs)

    def add_task(self, name: str, pairs: Any) -> str:
        """Add (or replace) a task: ``pairs`` as (x, y) tuples or ``x -> y`` lines of text."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a task needs a name, got {name!r}")
        pairs = parse_pairs(pairs) if isinstance(pairs, str) else check_pairs(pairs, f"task {name!r}")
        if len({x for x, _ in pairs}) < 3:
            raise ValueError(f"task {name!r} needs at least 3 pairs with different inputs")
        self._pairs[name] = pairs
        self._data.pop(name, None)
        return name

    def check_task(self, name: Any) -> str:
        if name not in self._pairs:
            raise ValueError(f"unknown task {name!r}; the tasks are {self.task_names} (or type x -> y pairs)")
        return name

    def data(self, name: str) -> TaskData:
        """The task's prompts (drawn once): few-shot prompts and zero-shot prompts on other queries."""
        name = self.check_task(name)
        if name not in self._data:
            pairs = self._pairs[name]
            shots = min(self.shots, len({x for x, _ in pairs}) - 1)
            few = icl_prompts(pairs, shots, self.n_prompts, seed=self.seed)
            used = {p.query for p in few}
            fresh = [p for p in pairs if p[0] not in used]
            pool = fresh if len(fresh) >= min(self.n_eval, 8) else pairs  # held-out queries when there are enough
            zero = icl_prompts(pool, 0, min(self.n_eval, len(pool)), seed=self.seed + 1)
            self._data[name] = TaskData(name, pairs, few, zero)
        return self._data[name]

    # -- computations (each cached) ------------------------------------------------------------
    def vector(self, name: str) -> Direction:
        data = self.data(name)
        if data.vector is None:
            data.vector = task_vector(self.binding.model, data.few_shot, self.binding.layer, position=self.position,
                                      prepend_bos=self.bos, remote=self.remote)
        return data.vector

    def overview(self, name: str) -> dict:
        """Zero-shot, few-shot and task-vector accuracy (and NLL) at the SAE's layer, in one scoring run."""
        data = self.data(name)
        if data.overview is None:
            model, bos = self.binding.model, self.bos
            vector = self.vector(name)
            zero = encode_all(model.tokenizer, data.zero_shot, bos)
            few = encode_all(model.tokenizer, [p for p in data.few_shot], bos)
            layer = self.binding.layer
            scores = score(model, zero, [Variant(), Variant(layer, vector.vector, self.insert)], data.zero_shot[0].stop,
                           remote=self.remote)
            few_scores = score(model, few, [Variant()], data.few_shot[0].stop, remote=self.remote)
            out = {"task": name, "layer": layer, "shots": data.few_shot[0].n_shots, "n_eval": len(data.zero_shot),
                   "n_prompts": len(data.few_shot), "insert": self.insert, "position": self.position}
            for key, (sc, v) in {"zero_shot": (scores, 0), "task_vector": (scores, 1), "few_shot": (few_scores, 0)}.items():
                nlls = sc.nll(v, SWEEP_ANSWER_TOKENS)
                out[key] = {"accuracy": sum(sc.correct[v]) / len(sc.correct[v]), "nll": sum(nlls) / len(nlls)}
            data.overview = out
        return dict(data.overview)

    def features(self, name: str, on_step: Callable[[dict], None] | None = None) -> TaskFeatures:
        """Gradient cleanup of the task vector at the SAE's layer, measured on the zero-shot prompts."""
        data = self.data(name)
        if data.features is None:
            options = dict(self.cleanup)
            data.features = task_features(self.binding.model, self.binding.sae, data.few_shot, method="cleanup",
                                          vector=self.vector(name), eval_prompts=data.zero_shot, insert=self.insert,
                                          prepend_bos=self.bos, progress=False, remote=self.remote, on_step=on_step,
                                          **options)
        return data.features

    def set_prompts(self, name: str, few_shot: Any, zero_shot: Any) -> None:
        """Use these prompts for ``name`` (``sw.icl_prompts``: few-shot ones for the task vector,
        zero-shot ones with answers to score), e.g. those an analysis in the notebook used."""
        from ..tasks.prompts import as_prompts, with_answers

        few = with_answers(as_prompts(few_shot), "few_shot")
        zero = with_answers(as_prompts(zero_shot), "zero_shot")
        name = self.check_task(name)
        self._data[name] = TaskData(name, self._pairs[name], few, zero)

    def set_features(self, name: str, features: TaskFeatures) -> None:
        """Use a cleanup result computed elsewhere (``sw.task_features``) for ``name``."""
        if not isinstance(features, TaskFeatures):
            raise ValueError(f"features must be an sw.TaskFeatures (sw.task_features(...)), got {type(features).__name__}")
        if features.sae is not self.binding.sae:
            raise ValueError("these task features belong to another SAE")
        self.data(name).features = features

    def set_sweep(self, name: str, sweep: LayerSweep) -> None:
        if not isinstance(sweep, LayerSweep):
            raise ValueError(f"sweep must be an sw.LayerSweep (sw.layer_sweep(...)), got {type(sweep).__name__}")
        self.data(name).sweep = sweep

    def roles(self, name: str) -> Any:
        data = self.data(name)
        if data.roles is None:
            code = self.features(name)
            if code.l0 == 0:
                import pandas as pd

                data.roles = pd.DataFrame(columns=["feature", "weight", "role"])
            else:
                data.roles = feature_roles(self.binding.model, self.binding.sae, code, data.few_shot, data.zero_shot,
                                           insert=self.insert, prepend_bos=self.bos, remote=self.remote)
        return data.roles

    def sweep(self, name: str, methods: Sequence[str] = SWEEP_FIRST, progress: bool = False) -> LayerSweep:
        """The layer sweep (cleanup's row is added once cleanup has run, see ``sweep_json``)."""
        data = self.data(name)
        if data.sweep is None:
            data.sweep = layer_sweep(self.binding.model, self.binding.sae, data.few_shot, data.zero_shot,
                                     methods=methods, position=self.position, insert=self.insert,
                                     answer_tokens=SWEEP_ANSWER_TOKENS, prepend_bos=self.bos, progress=progress,
                                     remote=self.remote)
        sweep = data.sweep
        code = data.features
        has_cleanup = bool(((sweep.frame["method"] == "cleanup") & (sweep.frame["layer"] == self.binding.layer)).any())
        if code is not None and not has_cleanup:
            nll = code.evaluation.nll if code.evaluation is not None else float("nan")
            sweep = data.sweep = sweep.with_row("cleanup", self.binding.layer, nll, float(code.accuracy or 0.0), code.l0,
                                                code.direction, code)
        return sweep

    # -- JSON for the view -----------------------------------------------------------------------
    def sweep_json(self, name: str) -> dict:
        sweep = self.sweep(name)
        return {"task": name, "spec": sweep.spec(), "rows": sweep.rows(), "sae_layer": self.binding.layer}

    def label(self, feature: int) -> str:
        """An explanation when one was given, else the feature's top promoted tokens (logit lens)."""
        if feature in self.explanations:
            return self.explanations[feature]
        if feature not in self._labels:
            W_U = self.binding.unembedding()
            weights = self.binding.sae.W_dec[feature].detach().to(W_U) @ W_U
            strings = self.binding.token_strings()
            top = torch.topk(weights.float(), 3).indices.tolist()
            self._labels[feature] = "↑ " + " ".join(repr(strings[t].strip() or strings[t])[1:-1] for t in top)
        return self._labels[feature]

    def features_json(self, name: str, selected: Sequence[int] | None = None) -> dict:
        code = self.features(name)
        roles = self.roles(name)
        by_feature = {int(r["feature"]): r for r in roles.to_dict("records")} if len(roles) else {}
        chosen = set(code.features if selected is None else selected)
        rows = []
        for f, w in code.features.items():
            r = by_feature.get(f, {})
            label = self.label(f)
            rows.append({"feature": f, "name": feature_name(f, label), "label": label, "weight": w,
                         "role": r.get("role", "other"), "selected": f in chosen,
                         **{k: _finite(r.get(k)) for k in ("on_examples", "at_separators", "alone_share", "needed_share",
                                                            "alone_accuracy", "without_accuracy")}})
        history = code.history
        initial = int(history["l0"].iloc[0]) if history is not None and len(history) else None
        return {"task": name, "spec": features_spec(), "dataset": FEATURES, "rows": rows, "l0": code.l0,
                "initial_l0": initial, "steps": code.steps, "nll": _finite(code.nll), "accuracy": code.accuracy,
                "method": code.method, "layer": code.layer,
                "topk_relu": getattr(self.binding.sae, "architecture", "") == "topk"}

    def completions(self, name: str, selected: Sequence[int]) -> dict:
        """Greedy zero-shot completions of the first ``n_show`` prompts with ``selected`` features of
        the cleaned code inserted (with b_dec when replacing), and the accuracy / NLL on all scored
        prompts; cached per subset."""
        data = self.data(name)
        code = self.features(name)
        keep = tuple(sorted(int(f) for f in selected))
        unknown = [f for f in keep if f not in code.features]
        if unknown:
            raise ValueError(f"features {unknown} are not among the task's cleaned features {list(code.features)}")
        cached = data.completions.get(keep)
        if cached is not None:
            return cached
        model, layer = self.binding.model, self.binding.layer
        direction = code.subset(keep)
        shown = data.zero_shot[: self.n_show]
        encoded = encode_all(model.tokenizer, data.zero_shot, self.bos)
        longest = max(len(e.answer_ids) for e in encoded[: len(shown)])
        rows = [Row(e.ids, (Edit(layer, direction.vector, op=self.insert, positions=(e.separators[-1],)),))
                for e in encoded[: len(shown)]]
        out = generate(model, rows, Decoding(max_new_tokens=longest + 2, prepend_bos=False, stop=(shown[0].stop,)),
                       remote=self.remote)
        texts = []
        for i in range(len(shown)):
            ids, _ = out.continuation(i)
            texts.append(model.tokenizer.decode(ids, skip_special_tokens=True).split(shown[0].stop)[0])
        evaluation = evaluate_task_vector(model, direction, data.zero_shot, layer=layer, insert=self.insert,
                                          answer_tokens=SWEEP_ANSWER_TOKENS, prepend_bos=self.bos, remote=self.remote)
        result = {"task": name, "selected": list(keep), "accuracy": evaluation.accuracy, "nll": _finite(evaluation.nll),
                  "n_eval": evaluation.n,
                  "rows": [{"prompt": p.text, "answer": p.answer, "completion": t, "correct": t.strip() == p.answer}
                           for p, t in zip(shown, texts)]}
        data.completions.put(keep, result)
        return result


def _finite(value: Any) -> Any:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return number if math.isfinite(number) else None


__all__ = ["TaskData", "TaskSession", "parse_pairs"]
