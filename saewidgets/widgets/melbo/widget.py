"""``MelboExplorer``: a gallery of MELBO vectors, what each does on every prompt, and training more.

The widget only orchestrates a ``MelboSession`` (``saewidgets.sessions.melbo``): its state lives
in synced traits (a saved notebook shows the gallery without a kernel) and every computation
runs on a worker thread (``live.LatestRequestRunner``), so the kernel stays free while cards
fill in, a vector's continuations are generated or more vectors train.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import anywidget
import traitlets as t

from ...core.binding import Binding, bind
from ...melbo.result import MelboVectors
from ...melbo.train import MelboStep
from ...sessions.melbo import DEFAULT_MULTIPLES, DEFAULT_PATH, MelboSession
from ...sessions.self_explanations import auto_default
from ..live import LatestRequestRunner, Superseded, Ticket

STATIC = Path(__file__).resolve().parents[2] / "static"
MISSING_ESM = """export default { render({ el }) {
  el.textContent = "saewidgets: the front end is not built. Run `npm install && npm run build` in js/ "
    + "(pip install -e . does it), then restart the kernel.";
} };"""
PROGRESS_INTERVAL = 0.2  # seconds between progress updates while training


class MelboExplorer(anywidget.AnyWidget):
    """A gallery of MELBO vectors: per vector its top SAE features, logit lens, self-explanation
    and its continuations on every prompt next to the baseline, with a slider over multiples of R.

    >>> model, sae = sw.organism()
    >>> gallery = sw.MelboExplorer(model, sae, prompts, source_layer=1, target_layer=3, radius=8,
    ...                            n_vectors=8, path="melbo.sqlite")
    >>> gallery.selected = 3          # the view follows; gallery.train(4) learns four more
    >>> gallery.open_explorer(3)      # a FeatureExplorer on vector 3 (as an sw.Direction)

    Parameters:
        model, sae: a model and its SAE, or a ``Binding``.
        prompts: the training prompts (default: those of ``vectors``).
        vectors: ``MelboVectors`` from ``sw.melbo`` to show (and continue training from).
        source_layer, target_layer, radius, steps, p, q, lr, seed, prepend_bos: the run's settings
            (``sw.melbo``'s), when ``vectors`` are not given.
        n_vectors: vectors to have at the start (trained now, or resumed from ``path``).
        held_out: more prompts to show each vector's continuations on.
        path: the MELBO store (SQLite; an atlas file works too) where vectors are saved as they
            finish and loaded from in a later kernel. Default ``melbo.sqlite`` in the working
            folder; ``False``: a temporary file (nothing survives the kernel).
        multiples: the multiples of R the slider moves over. max_new_tokens: continuation length.
        auto_explain: self-explain each selected vector (default: models up to 200M parameters).
        progress: a progress bar while the first ``n_vectors`` train. remote: passed to nnsight.

    Traits: ``cards`` (one dict per vector), ``groups``, ``selected``, ``multiple`` (the slider),
    ``generations`` and ``explanation`` (of the selected vector), ``training`` (progress),
    ``n_train`` (how many the view's button trains), ``busy``, ``error``, ``saved_path``.
    """

    _esm = STATIC / "widget.js" if (STATIC / "widget.js").is_file() else MISSING_ESM
    _css = STATIC / "widget.css" if (STATIC / "widget.css").is_file() else ""
    _kind = t.Unicode("melbo").tag(sync=True)

    title = t.Unicode("").tag(sync=True)
    settings = t.Dict().tag(sync=True)
    prompts = t.List(t.Unicode()).tag(sync=True)
    held_out = t.List(t.Unicode()).tag(sync=True)
    multiples = t.List(t.Float()).tag(sync=True)
    saved_path = t.Unicode("").tag(sync=True)

    cards = t.List(t.Dict()).tag(sync=True)
    groups = t.List(t.Dict()).tag(sync=True)
    selected = t.Int(-1).tag(sync=True)
    multiple = t.Float(1.0).tag(sync=True)
    generations = t.Dict().tag(sync=True)
    explanation = t.Dict().tag(sync=True)
    auto_explain = t.Bool(True).tag(sync=True)

    training = t.Dict().tag(sync=True)
    n_train = t.Int(4).tag(sync=True)
    busy = t.Bool(False).tag(sync=True)
    error = t.Unicode("").tag(sync=True)

    def __init__(self, model: Any, sae: Any = None, prompts: Sequence[str] | None = None, *,
                 vectors: MelboVectors | None = None, source_layer: int | None = None, target_layer: int | None = None,
                 radius: float | None = None, steps: int = 300, p: float = 2.0, q: float | None = None,
                 lr: float = 1e-3, seed: int = 0, prepend_bos: bool = False, n_vectors: int = 0,
                 held_out: Sequence[str] = (), path: Any = DEFAULT_PATH, multiples: Sequence[float] = DEFAULT_MULTIPLES,
                 max_new_tokens: int = 16, auto_explain: bool | None = None, progress: bool = True,
                 remote: Any = False, **kwargs: Any) -> None:
        binding = model if isinstance(model, Binding) and sae is None else bind(model, sae)
        settings = None
        if vectors is None:
            if source_layer is None or target_layer is None or radius is None:
                raise ValueError("give vectors= (from sw.melbo), or the run's source_layer=, target_layer= and radius=")
            settings = dict(source_layer=source_layer, target_layer=target_layer, radius=radius, steps=steps, p=p, q=q,
                            lr=lr, seed=seed, prepend_bos=prepend_bos)
        self.session = MelboSession(binding, prompts, vectors=vectors, settings=settings, held_out=held_out, path=path,
                                    multiples=multiples, max_new_tokens=max_new_tokens, remote=remote)
        if not isinstance(n_vectors, int) or isinstance(n_vectors, bool) or n_vectors < 0:
            raise ValueError(f"n_vectors must be a whole number >= 0, got {n_vectors!r}")
        if auto_explain is None:
            auto_explain = auto_default(binding.model)
        self._binding = binding
        self._live = False
        self._cards_runner = LatestRequestRunner(0.0, on_busy=lambda _: self._update_busy(),
                                                 name="saewidgets-melbo-cards")
        self._detail_runner = LatestRequestRunner(0.05, on_busy=lambda _: self._update_busy(),
                                                  name="saewidgets-melbo-detail")
        self._train_runner = LatestRequestRunner(0.0, on_busy=lambda _: self._update_busy(),
                                                 name="saewidgets-melbo-train")
        self._stop = False
        self._ready = False
        self.explorers: list[Any] = []  # FeatureExplorers opened from the gallery
        from ipywidgets import Output, VBox

        self.output = Output()  # where "open in FeatureExplorer" shows them
        from ...sessions.lens import model_name

        super().__init__(title=model_name(self.session.vectors_model), prompts=self.session.prompts,
                         held_out=self.session.held_out, multiples=self.session.multiples,
                         settings=self.session.settings_json(), auto_explain=bool(auto_explain),
                         saved_path=str(self.session.store.path) if self.session.saved else "", **kwargs)
        self._box = VBox([self, self.output])
        self.on_msg(self._on_message)
        if n_vectors > len(self.session.vectors):
            self.session.train(n_vectors - len(self.session.vectors), progress=progress)
        self._ready = True
        self._refresh_cards(sync=True)
        if len(self.session.vectors):
            self.selected = 0

    # -- display: the gallery, then the explorers it opens ------------------------------------
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self._box._repr_mimebundle_(**kwargs)

    # -- public API ---------------------------------------------------------------------------
    @property
    def vectors(self) -> MelboVectors:
        """The run's vectors so far (``sw.Direction`` values)."""
        return self.session.vectors

    def train(self, n_more: int | None = None, wait: bool = True) -> None:
        """Learn ``n_more`` (default ``n_train``) more vectors; the view shows the progress.
        ``wait=False`` returns at once (the training runs on the worker thread)."""
        n = self.n_train if n_more is None else n_more
        job = lambda ticket: self._train_job(n, ticket)  # noqa: E731
        if wait or not self._live:
            self._train_runner.run_now(job)
        else:
            self._train_runner.submit(job)

    def stop(self) -> None:
        """Stop training after the current step (finished vectors and a checkpoint are kept)."""
        self._stop = True

    def open_explorer(self, index: int | None = None, **options: Any) -> Any:
        """A ``FeatureExplorer`` on vector ``index`` (default: the selected one) as an ``sw.Direction``,
        steering where the vector was learned (its source layer, scale 1 = R), on the first
        prompt; shown below the gallery. ``options`` go to ``FeatureExplorer``."""
        from ..explorer import FeatureExplorer

        index = self.selected if index is None else index
        direction = self.session.direction(index)
        settings = {**dict(hook=self.vectors.hook, scale=1.0, prompt=self.session.prompts[0],
                           max_new_tokens=self.session.max_new_tokens,
                           self_explain_options={"layer": self.vectors.source_layer}), **options}
        explorer = FeatureExplorer(self._binding.model, self._binding.sae, direction=direction, **settings)
        self.explorers.append(explorer)
        self.output.clear_output()
        with self.output:
            from IPython.display import display

            display(explorer)
        return explorer

    def wait(self, timeout: float | None = 60.0) -> bool:
        """Wait until cards, the selected vector's details and any training are done; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        done = True
        for runner in (self._train_runner, self._cards_runner, self._detail_runner):
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            done = runner.wait(left) and done
        return done

    def close(self) -> None:
        for name in ("_cards_runner", "_detail_runner", "_train_runner"):
            runner = getattr(self, name, None)
            if runner is not None:
                runner.close()
        session = getattr(self, "session", None)
        if session is not None:
            session.close()
        for name in ("_box", "output"):
            part = getattr(self, name, None)
            if part is not None and part is not self:
                part.close()
        super().close()

    # -- reactions ------------------------------------------------------------------------------
    @t.validate("selected")
    def _valid_selected(self, proposal: Any) -> int:
        value = proposal["value"]
        if value == -1 or 0 <= value < len(self.session.vectors):
            return value
        self.error = f"vector {value} does not exist: there are {len(self.session.vectors)} (0..{len(self.session.vectors) - 1})"
        return self.selected

    @t.validate("multiple")
    def _valid_multiple(self, proposal: Any) -> float:
        value = float(proposal["value"])
        return min(self.session.multiples, key=lambda m: abs(m - value))  # the slider snaps to the grid

    @t.validate("n_train")
    def _valid_n_train(self, proposal: Any) -> int:
        value = proposal["value"]
        room = self._binding.d_model - len(self.session.vectors)
        if not 1 <= value <= max(1, room):
            self.error = f"the number of vectors to train must be from 1 to {room} (at most d_model in all)"
            return self.n_train
        return value

    @t.observe("selected")
    def _selected_changed(self, change: Any) -> None:
        if self._ready and change["new"] != change["old"]:
            self.error = ""
            self._show_selected()

    @t.observe("auto_explain")
    def _auto_changed(self, change: Any) -> None:
        if self._ready and change["new"] and not change["old"]:
            self._show_selected()

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        try:
            if kind == "ready":
                self._live = True
            elif kind == "train":
                self.train(int(content.get("n", self.n_train)), wait=False)
            elif kind == "stop":
                self.stop()
            elif kind == "explain":
                self._show_selected(explain=True)
            elif kind == "open":
                self.open_explorer(int(content.get("index", self.selected)))
        except ValueError as error:
            self.error = str(error)

    def _update_busy(self) -> None:
        runners = [getattr(self, name, None) for name in ("_cards_runner", "_detail_runner", "_train_runner")]
        self.busy = any(r is not None and r.busy for r in runners)

    # -- cards ------------------------------------------------------------------------------
    def _refresh_cards(self, sync: bool = False) -> None:
        job = self._cards_job
        if sync or not self._live:
            self._cards_runner.run_now(job)
        else:
            self._cards_runner.submit(job)

    def _cards_job(self, ticket: Ticket) -> None:
        session = self.session
        n = len(session.vectors)
        try:
            session.overview()
            cards = []
            for i in range(n):
                ticket.check()
                cards.append(session.card(i))
                if len(cards) % 4 == 0 or len(cards) == n:
                    done = list(cards)
                    ticket.publish(lambda done=done: setattr(self, "cards", done + self.cards[len(done):n]))  # type: ignore[misc]
            groups = session.groups()
        except Superseded:
            raise
        except Exception as error:  # shown in the view; the rest keeps working
            message = f"the gallery failed: {error}"  # `error` is unbound once the except block ends
            ticket.publish(lambda: setattr(self, "error", message))
            return
        ticket.publish(lambda: self._set_cards(cards, groups))

    def _set_cards(self, cards: list[dict], groups: list[dict]) -> None:
        with self.hold_sync():
            self.cards = cards
            self.groups = groups

    # -- the selected vector ------------------------------------------------------------------
    def _show_selected(self, explain: bool = False) -> None:
        index = self.selected
        if index < 0:
            self.generations, self.explanation = {}, {}
            return
        cached = self.session.cached_explanation(index)
        wanted = explain or self.auto_explain
        with self.hold_sync():
            self.generations = {"index": index, "status": "running"}
            self.explanation = cached or {"index": index, "status": "running" if wanted else "off"}
        job = lambda ticket: self._detail_job(index, wanted and cached is None, ticket)  # noqa: E731
        if self._live:
            self._detail_runner.submit(job)
        else:
            self._detail_runner.run_now(job)

    def _detail_job(self, index: int, explain: bool, ticket: Ticket) -> None:
        try:
            rows = self.session.generations(index)
        except Exception as error:
            failed = {"index": index, "status": "error", "message": f"generation failed: {error}"}
            ticket.publish(lambda: setattr(self, "generations", failed))
            return
        ticket.publish(lambda: setattr(self, "generations", {**rows, "status": "done"}))
        if not explain:
            return
        ticket.check()
        try:
            payload = self.session.explanation(index)
        except Exception as error:
            payload = {"index": index, "status": "error", "message": f"self-explanation failed: {error}"}
        ticket.publish(lambda: self._set_explanation(index, payload))

    def _set_explanation(self, index: int, payload: dict) -> None:
        """Show the selected vector's self-explanation, and put it on its card."""
        with self.hold_sync():
            self.explanation = payload
            if payload.get("status") == "done":
                self.cards = [{**c, "explanation": payload["explanation"]} if c.get("index") == index else c
                              for c in self.cards]

    # -- training -------------------------------------------------------------------------------
    def _train_job(self, n: int, ticket: Ticket) -> None:
        self._stop = False
        start = len(self.session.vectors)
        shown = [0.0]
        total = n * self.session.settings.steps

        def on_step(step: MelboStep) -> None:
            if self._stop:
                raise _Stopped()
            now = time.perf_counter()
            if now - shown[0] >= PROGRESS_INTERVAL or step.step == step.steps:
                shown[0] = now
                done = (step.vector - start) * step.steps + step.step
                self.training = {"status": "running", "done": done, "total": total, "vector": step.vector,
                                 "n_vectors": step.n_vectors, "step": step.step, "steps": step.steps,
                                 "objective": round(step.objective, 4)}

        self.training = {"status": "running", "done": 0, "total": total, "vector": start, "n_vectors": start + n}
        status, message = "done", ""
        try:
            self.session.train(n, on_step=on_step)
        except _Stopped:
            status = "stopped"
        except Exception as error:  # shown in the view; finished vectors are kept
            status, message = "error", f"training failed: {error}"
        finished = len(self.session.vectors)
        with self.hold_sync():
            self.training = {"status": status, "done": (finished - start) * self.session.settings.steps,
                             "total": total, "vector": finished, "n_vectors": start + n, "trained": finished - start}
            if message:
                self.error = message
        self._refresh_cards(sync=not self._live)
        if self.selected < 0 and finished:
            self.selected = 0


class _Stopped(Exception):
    """The view's stop button (raised from the training's step callback)."""
