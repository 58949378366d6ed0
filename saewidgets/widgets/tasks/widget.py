"""``TaskExplorer``: pick or type an in-context task, see what its task vector and its SAE task
features do, and steer zero-shot prompts with any subset of the features, live.

The widget only orchestrates: every computation is a method of its ``TaskSession``
(``saewidgets.sessions.tasks``) and runs on a worker thread (``live.LatestRequestRunner``), so
the kernel stays free; results land in synced traits as JSON.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping

import anywidget
import traitlets as t

from ...core.binding import Binding, bind
from ...sessions.tasks import TaskSession
from ...tasks.features import TaskFeatures
from ...tasks.sweep import LayerSweep
from ..explorer.widget import MISSING_ESM, STATIC
from ..live import LatestRequestRunner, Superseded, Ticket

CUSTOM = "custom"
PROGRESS_INTERVAL = 0.2  # seconds between progress updates of a cleanup run


class TaskExplorer(anywidget.AnyWidget):
    """Explore the task vector and the SAE task features of in-context tasks.

    >>> model, sae = sw.organism()
    >>> tasks = sw.TaskExplorer(model, sae, task="category")    # the organism's ICL tasks
    >>> explorer = sw.FeatureExplorer(model, sae)
    >>> tasks.on_open(lambda f: setattr(explorer, "feature", f))  # or TaskExplorer(..., explorer=explorer)
    >>> display(tasks, explorer)

    It shows, for the chosen task: zero-shot, few-shot and task-vector accuracy (the task vector
    written at the last ``->`` of zero-shot prompts at the SAE's layer); the layer sweep (task
    vector, its SAE versions, ITO and gradient cleanup against the layer, ``sw.layer_sweep``);
    the cleaned task features (``sw.task_features(method="cleanup")``) as a bar chart with their
    labels (``explanations`` when given, else their top promoted tokens) and measured roles
    (detector / executor, ``saewidgets.tasks.roles``); and zero-shot completions with the
    features that are switched on inserted, recomputed when a feature is toggled.

    Clicking a feature's bar (or its "open" button) sets ``opened`` to the feature, calls the
    ``on_open`` callbacks and, with ``explorer=``, shows it in that ``FeatureExplorer``.

    Parameters:
        model, sae: a model and its ``sw.SAE`` (at resid_pre), or a ``Binding``.
        tasks: ``{name: [(x, y), ...]}`` (or ``x -> y`` text); default the organism's ICL tasks for
            the organism, else a few from the literature (``saewidgets.tasks.builtin``).
        task: the task shown first (default the first). A typed task (the view's text box, or
            ``add_task``) joins the list.
        prompts, features, sweep: for the first task, the prompts to use, ``(few_shot, zero_shot)``
            (``sw.icl_prompts``), and results computed on them (``sw.task_features``,
            ``sw.layer_sweep``), used instead of computing them again.
        shots, n_prompts, n_eval, n_show, seed: the prompts (``n_prompts`` prompts of ``shots``
            shots for the task vector, ``n_eval`` zero-shot prompts scored, ``n_show`` completed).
        cleanup: settings for ``sw.task_features`` (lam, lr, steps, patience, answer_tokens).
        explanations: ``{feature: text}`` or a DataFrame, shown as the features' labels.
        explorer: a ``FeatureExplorer`` that opens a clicked feature. remote: run through NDIF.

    Traits (synced): ``task``, ``task_names``, ``selected`` (the features switched on),
    ``opened``; computed: ``overview``, ``sweep``, ``features``, ``completions``, ``status``
    (stage and progress), ``busy``, ``error``.
    """

    _esm = STATIC / "widget.js" if (STATIC / "widget.js").is_file() else MISSING_ESM
    _css = STATIC / "widget.css" if (STATIC / "widget.css").is_file() else ""
    _kind = t.Unicode("tasks").tag(sync=True)

    title = t.Unicode("").tag(sync=True)
    task_names = t.List(t.Unicode()).tag(sync=True)
    task = t.Unicode("").tag(sync=True)
    overview = t.Dict().tag(sync=True)
    sweep = t.Dict().tag(sync=True)
    features = t.Dict().tag(sync=True)
    selected = t.List(t.Int()).tag(sync=True)
    completions = t.Dict().tag(sync=True)
    opened = t.Int(-1).tag(sync=True)
    status = t.Dict().tag(sync=True)
    busy = t.Bool(False).tag(sync=True)
    error = t.Unicode("").tag(sync=True)

    def __init__(self, model: Any, sae: Any = None, tasks: Mapping[str, Any] | None = None, task: str | None = None, *,
                 prompts: tuple[Any, Any] | None = None, features: TaskFeatures | None = None,
                 sweep: LayerSweep | None = None, shots: int = 6,
                 n_prompts: int = 16, n_eval: int = 32, n_show: int = 8, seed: int = 0,
                 cleanup: Mapping[str, Any] | None = None, explanations: Any = None, explorer: Any = None,
                 on_open: Callable[[int], None] | None = None, position: str = "separator", insert: str = "replace",
                 remote: Any = False, **kwargs: Any) -> None:
        binding = model if isinstance(model, Binding) and sae is None else bind(model, sae)
        self._binding = binding
        self.session = TaskSession(binding, tasks, shots=shots, n_prompts=n_prompts, n_eval=n_eval, n_show=n_show,
                                   seed=seed, position=position, insert=insert, cleanup=cleanup,
                                   explanations=explanations, remote=remote)
        names = self.session.task_names
        if not names:
            raise ValueError("no tasks: pass tasks={name: [(x, y), ...]}")
        task = names[0] if task is None else self.session.check_task(task)
        if prompts is not None:
            if not isinstance(prompts, (tuple, list)) or len(prompts) != 2:
                raise ValueError("prompts must be (few_shot, zero_shot): two lists of sw.icl_prompts(...)")
            self.session.set_prompts(task, *prompts)
        if features is not None:
            self.session.set_features(task, features)
        if sweep is not None:
            self.session.set_sweep(task, sweep)
        self._explorer = explorer
        self._callbacks: list[Callable[[int], None]] = [] if on_open is None else [on_open]
        self._runner = LatestRequestRunner(0.05, on_busy=self._on_busy, name="saewidgets-tasks")
        self._toggle_runner = LatestRequestRunner(0.1, name="saewidgets-tasks-steer")
        self._ready = False
        super().__init__(title=_title(binding), task_names=names, task=task, **kwargs)
        self.on_msg(self._on_message)
        self._ready = True
        self._start(task)

    # -- public API ---------------------------------------------------------------------
    @property
    def binding(self) -> Binding:
        return self._binding

    @property
    def task_features(self) -> TaskFeatures:
        """The current task's cleaned features (computed on first use)."""
        return self.session.features(self.task)

    @property
    def layer_sweep(self) -> LayerSweep:
        return self.session.sweep(self.task)

    @property
    def roles(self) -> Any:
        """The current task's features with their measured roles (a DataFrame)."""
        return self.session.roles(self.task)

    def add_task(self, name: str, pairs: Any, select: bool = True) -> None:
        """Add a task (pairs or ``x -> y`` lines) and show it."""
        self.session.add_task(name, pairs)
        with self.hold_sync():
            self.task_names = self.session.task_names
            if select:
                if self.task == name:
                    self._start(name)
                else:
                    self.task = name

    def on_open(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(feature)`` when a feature is opened (clicked) in the view."""
        self._callbacks.append(callback)

    def open_feature(self, feature: int) -> None:
        """Open ``feature``: set ``opened``, tell the callbacks and the linked explorer."""
        feature = self._binding.check_feature(feature)
        self.opened = feature
        if self._explorer is not None:
            self._explorer.feature = feature
        for callback in list(self._callbacks):
            callback(feature)

    def wait(self, timeout: float | None = 300.0) -> bool:
        """Wait until the current task's results and completions are in; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        done = True
        for runner in (self._runner, self._toggle_runner):
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            done = runner.wait(left) and done
        return done

    def close(self) -> None:
        for name in ("_runner", "_toggle_runner"):
            runner = getattr(self, name, None)
            if runner is not None:
                runner.close()
        super().close()

    # -- reactions ------------------------------------------------------------------------
    @t.validate("task")
    def _valid_task(self, proposal):
        if not getattr(self, "_ready", False):
            return proposal["value"]
        try:
            return self.session.check_task(proposal["value"])
        except ValueError as error:
            self.error = str(error)
            return self.task

    @t.observe("task")
    def _task_changed(self, change):
        if self._ready and change["old"] != change["new"]:
            self._start(change["new"])

    @t.validate("selected")
    def _valid_selected(self, proposal):
        value = [int(f) for f in proposal["value"]]
        known = {r["feature"] for r in self.features.get("rows") or []}
        if getattr(self, "_ready", False) and known and not set(value) <= known:
            self.error = f"features {sorted(set(value) - known)} are not among the task's features {sorted(known)}"
            return self.selected
        return sorted(dict.fromkeys(value))

    @t.observe("selected")
    def _selected_changed(self, change):
        if self._ready and change["old"] != change["new"] and self.features.get("task") == self.task:
            self._steer(self.task, list(change["new"]))

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        try:
            if kind == "open":
                self.open_feature(content.get("feature"))
            elif kind == "custom":
                name = str(content.get("name") or CUSTOM).strip() or CUSTOM
                self.add_task(name, str(content.get("text", "")))
        except ValueError as error:
            self.error = str(error)

    def _on_busy(self, flag: bool) -> None:
        self.busy = flag

    # -- the task's pipeline, on the worker thread ------------------------------------------
    def _start(self, task: str) -> None:
        with self.hold_sync():
            self.error = ""
            self.overview, self.sweep, self.features, self.completions = {}, {}, {}, {}
            self.status = {"task": task, "stage": "overview", "label": "task vector and baselines"}
        self._runner.submit(lambda ticket: self._pipeline(task, ticket))

    def _pipeline(self, task: str, ticket: Ticket) -> None:
        session = self.session
        stage = "overview"

        def show(**traits: Any) -> None:
            ticket.publish(lambda: self._set(traits))

        try:
            show(overview=session.overview(task), status={"task": task, "stage": "sweep", "label": "layer sweep"})
            ticket.check()
            stage = "sweep"
            show(sweep=session.sweep_json(task), status={"task": task, "stage": "cleanup", "label": "gradient cleanup"})
            ticket.check()
            stage = "cleanup"
            shown_at = [0.0]

            def on_step(record: dict) -> None:
                ticket.check()
                now = time.monotonic()
                if now - shown_at[0] >= PROGRESS_INTERVAL:
                    shown_at[0] = now
                    show(status={"task": task, "stage": "cleanup", "label": "gradient cleanup", "done": record["step"],
                                 "total": record["steps"], "l0": record["l0"], "nll": record["nll"]})

            session.features(task, on_step=on_step)
            stage = "roles"
            show(status={"task": task, "stage": "roles", "label": "detectors and executors"})
            features = session.features_json(task)
            chosen = [r["feature"] for r in features["rows"]]
            ticket.check()
            stage = "completions"
            completions = session.completions(task, chosen)
            show(sweep=session.sweep_json(task), features=features, selected=chosen, completions=completions,
                 status={"task": task, "stage": "done"})
        except Superseded:
            raise
        except Exception as error:  # shown in the widget, which stays usable
            message = str(error) if isinstance(error, ValueError) else f"{stage} failed: {error}"
            show(error=message, status={"task": task, "stage": "error", "label": message})

    def _set(self, traits: dict) -> None:
        with self.hold_sync():
            ready, self._ready = self._ready, False  # a published `selected` is not a toggle
            try:
                for name, value in traits.items():
                    setattr(self, name, value)
            finally:
                self._ready = ready

    def _steer(self, task: str, selected: list[int]) -> None:
        self.status = {**self.status, "steering": True}

        def job(ticket: Ticket) -> None:
            try:
                result = self.session.completions(task, selected)
            except Superseded:
                raise
            except Exception as error:
                message = str(error) if isinstance(error, ValueError) else f"steering failed: {error}"
                ticket.publish(lambda: self._set({"error": message}))
                return
            if self.task == task:
                ticket.publish(lambda: self._set({"completions": result,
                                                  "status": {**self.status, "steering": False}}))

        self._toggle_runner.submit(job)


def _title(binding: Binding) -> str:
    from ...sessions.lens import title

    return title(binding)
