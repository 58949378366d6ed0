"""``FeatureExplorer``: pick an SAE feature (or give a direction), read its logit lens, steer with it live.

The widget only orchestrates: its state lives in synced traits (so a saved notebook can show
it without a kernel), every computation is a method of its ``ExplorerSession``
(``saewidgets.sessions.explorer``), and steered generations run on a worker thread
(``live.LatestRequestRunner``) so the kernel stays responsive while the slider moves.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import anywidget
import traitlets as t

from ...core.binding import Binding, bind
from ...core.direction import Direction
from ...export.mixin import ExportMixin
from ...sessions import checks
from ...sessions import self_explanations as selfexplain
from ...sessions.explorer import ExplorerSession, SteerRequest
from ...sessions.generation import GenerationView
from ..live import LatestRequestRunner, Superseded, Ticket

STATIC = Path(__file__).resolve().parents[2] / "static"
# Without the bundle (a source checkout where js/ was not built) the widget still works from
# Python, and its view says how to build the front end.
MISSING_ESM = """export default { render({ el }) {
  el.textContent = "saewidgets: the front end is not built. Run `npm install && npm run build` in js/ "
    + "(pip install -e . does it), then restart the kernel.";
} };"""
DEFAULT_PROMPT = "The word"
STREAM_INTERVAL = 0.05  # seconds between streamed updates of a running generation
RANK_METRICS = ("skew", "kurtosis", "std", "enrichment")
VALIDATED = ("feature", "scale", "prompt", "max_new_tokens", "temperature", "seed", "token_class", "rank_by",
             "steering")


class _Checked(t.TraitType):
    """A number trait whose value is checked by the widget's own validator (one clear ValueError for
    a wrong type or a value out of range, from Python; an error banner from the view)."""

    def validate(self, obj: Any, value: Any) -> Any:
        return value


class _Int(_Checked, t.Int):
    pass


class _Float(_Checked, t.Float):
    pass


class _Text(_Checked, t.Unicode):
    pass


class _Entries(_Checked, t.List):
    pass


class FeatureExplorer(ExportMixin, anywidget.AnyWidget):
    """Explore one SAE feature, or any direction, at a time, live.

    >>> model, sae = sw.organism()
    >>> explorer = sw.FeatureExplorer(model, sae, feature=3, prompt="I painted the wall")
    >>> explorer.feature = 12      # the view follows; moving its slider updates explorer.scale
    >>> sw.FeatureExplorer(model, sae, direction=task_vector)   # a raw vector or sw.Direction

    It shows a feature picker (index, search over top tokens and explanations, rankings by
    logit-weight std / skew / kurtosis / token-class enrichment), the target's logit histogram
    split by a token class with its statistics and top promoted / suppressed tokens, steering:
    baseline and steered continuations side by side, regenerated whenever the scale, the
    prompt, the decoding settings or the extra steering entries change (a slider move runs the
    steered row only: the baseline is kept), and the self-explanation (``sw.self_explain``: one
    batched sweep per target, cached; the slider picks the sweep row of the same size relative
    to the residual stream, see ``saewidgets.sessions.self_explanations``).

    A raw direction (``direction=``, or ``explorer.direction = ...``) is shown with every panel
    that applies to a vector (logit lens, histogram, statistics, steering, self-explanation);
    ``feature`` is then -1. Picking a feature in the view switches back to features.

    Parameters:
        model, sae: a model (``sw.load_model`` spec) and its ``sw.SAE``, or a ``Binding``.
        feature, direction: the initial target (a feature index; or a vector / ``sw.Direction``).
        prompt, scale, token_class, max_new_tokens, temperature, seed: initial state.
        classes: extra token classes, ``{name: words | regex string | token ids}`` (a string is
            a regular expression over decoded tokens, a list of strings a word list, a list of
            ints token ids), added to the built-in classes.
        explanations: ``{feature: text}`` or a DataFrame with ``feature`` and ``explanation``
            (or ``description``) columns; searchable, shown with the feature.
        steering: extra ``[(feature, scale), ...]`` entries steered together with the target.
        typical_activation: a typical (e.g. max) activation per feature, a sequence or
            ``{feature: value}``; the slider then spans about twice that.
        bins: histogram bins. debounce: seconds of quiet a burst of changes must end with
            before a generation starts (a lone change starts at once).
        remote: run generations through NDIF (``True``; ``"local"`` tests the same path
            locally); tokens then arrive when a generation ends instead of streaming.
        auto_self_explain: explain each target as it is shown (a sweep each, after its steered
            generation). Default: on for models up to 200M parameters; else a button in the
            panel (or ``explorer.self_explain()``) explains on demand.
        self_explain_options: keyword arguments for ``sw.self_explain`` (``template``,
            ``layer``, ``scales``, ``max_new_tokens``, ``layer_map``, ...).

    Traits (synced with the view): ``feature``, ``scale``, ``prompt``, ``max_new_tokens``,
    ``temperature``, ``seed``, ``steering`` (list of ``{feature, scale, max, linear}``),
    ``token_class``, ``rank_by``, ``search``; computed: ``direction_info`` (the raw target, or
    empty), ``feature_info``, ``histogram`` (counts and the chart's Vega-Lite spec),
    ``scale_range``, ``rankings``, ``search_results``, ``generation`` (the latest
    baseline/steered tokens), ``busy``, ``error``, ``stats_progress``, ``self_explanation``
    (the sweep's rows, chosen and best explanations, chart spec; the view picks the slider's
    row itself, see ``self_explanation_current``); ``auto_self_explain`` (the panel's checkbox).

    Generations start once a view is showing (on a worker thread, newest request wins);
    without a view, trait changes generate synchronously.
    """

    _esm = STATIC / "widget.js" if (STATIC / "widget.js").is_file() else MISSING_ESM
    _css = STATIC / "widget.css" if (STATIC / "widget.css").is_file() else ""
    _kind = t.Unicode("explorer").tag(sync=True)

    title = t.Unicode("").tag(sync=True)
    n_features = t.Int(0).tag(sync=True)

    # the target (a feature, or a raw direction when feature == -1) and what is shown about it
    feature = _Int(0).tag(sync=True)
    direction_info = t.Dict().tag(sync=True)
    feature_info = t.Dict().tag(sync=True)
    class_names = t.List(t.Unicode()).tag(sync=True)
    token_class = _Text("").tag(sync=True)
    histogram = t.Dict().tag(sync=True)

    # picking features
    rank_by = _Text("skew").tag(sync=True)
    rankings = t.Dict().tag(sync=True)
    stats_progress = t.Dict().tag(sync=True)
    search = t.Unicode("").tag(sync=True)
    search_results: t.List = t.List().tag(sync=True)

    # steering
    scale = _Float(0.0).tag(sync=True)
    scale_range = t.Dict().tag(sync=True)
    steering = _Entries([]).tag(sync=True)
    prompt = _Text(DEFAULT_PROMPT).tag(sync=True)
    max_new_tokens = _Int(20).tag(sync=True)
    temperature = _Float(0.0).tag(sync=True)
    seed = _Int(0).tag(sync=True)
    generation = t.Dict().tag(sync=True)

    # status
    busy = t.Bool(False).tag(sync=True)
    error = t.Unicode("").tag(sync=True)

    # the self-explanation panel: status and the sweep (rows, chosen, best, chart spec)
    self_explanation = t.Dict().tag(sync=True)
    auto_self_explain = t.Bool(False).tag(sync=True)

    def __init__(
        self,
        model: Any,
        sae: Any = None,
        feature: int = 0,
        prompt: str = DEFAULT_PROMPT,
        *,
        direction: Any = None,
        scale: float = 0.0,
        token_class: str | None = None,
        classes: Mapping[str, Any] | None = None,
        explanations: Any = None,
        steering: Iterable[tuple[int, float]] | None = None,
        max_new_tokens: int = 20,
        temperature: float = 0.0,
        seed: int = 0,
        typical_activation: Any = None,
        bins: int = 60,
        debounce: float = 0.05,
        hook: Any = None,
        remote: bool | str = False,
        auto_self_explain: bool | None = None,
        self_explain_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        binding = model if isinstance(model, Binding) and sae is None and hook is None else bind(model, sae, hook)
        self._binding = binding
        self._ready = False
        self._live = False  # becomes True once a view says it is showing
        self.session = ExplorerSession(binding, classes=classes, explanations=explanations,
                                       typical_activation=typical_activation, bins=bins, remote=remote,
                                       self_explain_options=self_explain_options)
        self._direction: Direction | None = None  # a raw target (feature == -1)
        # feature_info is computed on the kernel's thread and on the statistics worker: one at a time,
        # so that a slower, older computation never overwrites a newer one (e.g. without enrichment)
        self._info_lock = threading.RLock()
        self._runner = LatestRequestRunner(debounce, on_busy=self._on_busy, name="saewidgets-explorer")
        self._stats_runner = LatestRequestRunner(0.0, name="saewidgets-explorer-stats")
        self._explain_runner = LatestRequestRunner(0.0, name="saewidgets-explorer-self-explain")

        # Arguments are checked strictly (ValueError) here; later changes report in `error`.
        if direction is not None:
            self._direction = self._raw_target(direction)
            feature = -1
        else:
            feature = binding.check_feature(feature)
        checks.check_prompt(prompt)
        scale = checks.check_scale(scale)
        checks.check_decoding(max_new_tokens, temperature, seed)
        names = self.session.class_names
        token_class = token_class or self.session.default_class()
        if token_class not in names:
            raise ValueError(f"unknown token class {token_class!r}; choose one of {names}")
        entries = checks.check_entries(binding, list(steering or []))
        if auto_self_explain is None:
            auto_self_explain = selfexplain.auto_default(binding.model)
        elif not isinstance(auto_self_explain, bool):
            raise ValueError(f"auto_self_explain must be True, False or None (by model size), got {auto_self_explain!r}")

        super().__init__(
            title=self.session.title, n_features=binding.d_sae, feature=feature, prompt=prompt,
            scale=scale, token_class=token_class, class_names=names, max_new_tokens=max_new_tokens,
            temperature=float(temperature), seed=seed, auto_self_explain=auto_self_explain, **kwargs,
        )
        self._accepted = {name: getattr(self, name) for name in VALIDATED}
        self.on_msg(self._on_message)
        with self.hold_sync():
            self.steering = [self._with_range(e) for e in entries]
            self._start_stats()
            self._show_target()
        self._ready = True
        self._generate(sync=True)
        self._update_self_explanation()

    # -- public API -----------------------------------------------------------------
    @property
    def binding(self) -> Binding:
        return self._binding

    @property
    def direction(self) -> Direction:
        """The current target as an ``sw.Direction`` (the feature's, or the raw one)."""
        if self._direction is not None:
            return self._direction
        return Direction.feature(self._binding.sae, self.feature)

    @direction.setter
    def direction(self, value: Any) -> None:
        if isinstance(value, Direction) and value.feature_index is not None and value.sae is self._binding.sae:
            self.feature = value.feature_index
            return
        raw = self._raw_target(value)
        with self.hold_sync():
            self._direction = raw
            self.error = ""
            if self.feature != -1:
                self.feature = -1  # observers show the new target
            else:
                self._target_changed()

    def _raw_target(self, value: Any) -> Direction:
        direction = value if isinstance(value, Direction) else Direction(value, name="raw vector")
        return self.session.target(direction)

    @property
    def target(self) -> Any:
        """What the explorer shows: the feature index, or the raw ``sw.Direction`` (feature -1)."""
        return self._direction if self.feature == -1 and self._direction is not None else self.feature

    def add_class(self, name: str, tokens: Any = None, *, words: Any = None, regex: str | None = None,
                  ids: Any = None, select: bool = True) -> None:
        """Add a token class (words, a regular expression or token ids) and show it.

        ``explorer.add_class("colours", ["red", "green"])``, ``add_class("caps", regex=r"^\\s?[A-Z]+$")``.
        """
        self.session.add_class(name, tokens, words=words, regex=regex, ids=ids)
        with self.hold_sync():
            self.class_names = self.session.class_names
            if select:
                self.token_class = name

    def refresh(self) -> None:
        """Generate again for the current state (dropping its cached result)."""
        self.session.drop(self._request())
        self._generate(sync=not self._live)

    def wait(self, timeout: float | None = 60.0) -> bool:
        """Wait until pending generations, statistics and self-explanations are done; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        done = True
        for runner in (self._runner, self._stats_runner, self._explain_runner):
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            done = runner.wait(left) and done
        return done

    def self_explain(self, feature: int | None = None) -> Any:
        """The self-explanation sweep of ``feature`` (default: the current target), a DataFrame of
        ``sw.self_explain``: computed once per target and cached (what the panel shows). For
        the current target the panel shows it too, also when automatic explanation is off."""
        target = self.target if feature is None else self._binding.check_feature(feature)
        frame = self.session.self_explanation_frame(target)
        if feature is None or feature == self.feature:
            self._update_self_explanation()
        return frame

    @property
    def self_explanation_current(self) -> dict:
        """The self-explanation row for the slider's scale (the view picks the same row)."""
        return selfexplain.select(self.self_explanation, self.scale)

    @property
    def stats(self) -> Any:
        """Logit-weight statistics of every feature (a DataFrame), once computed."""
        return self.session.lens.stats

    def close(self) -> None:
        for name in ("_runner", "_stats_runner", "_explain_runner"):
            runner = getattr(self, name, None)
            if runner is not None:
                runner.close()
        super().close()

    # -- validation: bad values from the view or from Python keep the previous state --
    def _reject(self, name: str, error: Exception) -> Any:
        """Report ``error`` and keep the last accepted value (while the view's update is being
        applied, the trait already holds the rejected value, so it is not read back here)."""
        self.error = str(error)
        return self._accepted[name]

    @t.observe(*VALIDATED)
    def _remember_accepted(self, change):
        if hasattr(self, "_accepted"):
            self._accepted[change["name"]] = change["new"]

    def _checked(self, proposal: Any, check: Callable[[Any], Any]) -> Any:
        """A bad value set from Python raises a ValueError (the state is kept); one from the view
        shows in the error banner and the view goes back to the last good value."""
        if not getattr(self, "_ready", False):
            return check(proposal["value"])
        try:
            return check(proposal["value"])
        except ValueError as error:
            if getattr(self, "_property_lock", None):  # the change came from the view
                return self._reject(proposal["trait"].name, error)
            raise

    def _check_feature(self, value: Any) -> int:
        if value == -1 and self._direction is not None:
            return -1
        return self._binding.check_feature(value)

    @t.validate("feature")
    def _valid_feature(self, proposal):
        return self._checked(proposal, self._check_feature)

    @t.validate("scale")
    def _valid_scale(self, proposal):
        return self._checked(proposal, checks.check_scale)

    @t.validate("prompt")
    def _valid_prompt(self, proposal):
        return self._checked(proposal, checks.check_prompt)

    @t.validate("max_new_tokens")
    def _valid_tokens(self, proposal):
        return self._checked(proposal, checks.check_max_new_tokens)

    @t.validate("temperature")
    def _valid_temperature(self, proposal):
        return self._checked(proposal, checks.check_temperature)

    @t.validate("seed")
    def _valid_seed(self, proposal):
        return self._checked(proposal, checks.check_seed)

    @t.validate("token_class")
    def _valid_class(self, proposal):
        return self._checked(proposal, lambda name: checks.check_choice(name, self.session.class_names, "token class"))

    @t.validate("rank_by")
    def _valid_rank(self, proposal):
        return self._checked(proposal, lambda name: checks.check_choice(name, RANK_METRICS, "ranking"))

    @t.validate("steering")
    def _valid_steering(self, proposal):
        return self._checked(proposal, lambda entries: [self._with_range(e)
                                                        for e in checks.check_entries(self._binding, entries)])

    # -- reactions ------------------------------------------------------------------
    @t.observe("feature")
    def _feature_changed(self, change):
        if self._ready and change["old"] != change["new"]:
            if change["new"] != -1:
                self._direction = None
            self._target_changed()

    def _target_changed(self) -> None:
        self.error = ""
        self._show_target()
        self._generate()
        self._update_self_explanation()

    @t.observe("token_class")
    def _class_changed(self, change):
        if self._ready and change["old"] != change["new"]:
            with self.hold_sync():
                self._guard(self._show_rankings)
                self._guard(self._show_histogram)

    @t.observe("rank_by")
    def _rank_changed(self, change):
        if self._ready and change["old"] != change["new"]:
            self._guard(self._show_rankings)

    @t.observe("search")
    def _search_changed(self, change):
        if self._ready and change["old"] != change["new"]:
            self.search_results = self.session.search(change["new"])

    @t.observe("scale", "steering", "prompt", "max_new_tokens", "temperature", "seed")
    def _steering_changed(self, change):
        if self._ready and change["old"] != change["new"]:
            self.error = ""
            self._generate()

    @t.observe("auto_self_explain")
    def _auto_explain_changed(self, change):
        if self._ready and change["new"] and not change["old"]:
            self._update_self_explanation()

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "ready":
            self._live = True
            if self.generation.get("status") != "done" or self.generation.get("key") != _key_text(self._request()):
                self._generate()
        elif kind == "regenerate":
            self.session.drop(self._request())
            self._generate()
        elif kind == "self_explain":
            self._update_self_explanation(force=True)

    def _on_busy(self, flag: bool) -> None:
        self.busy = flag

    def _guard(self, action: Callable[[], None]) -> None:
        try:
            action()
        except ValueError as error:
            self.error = str(error)

    # -- the target's logit lens ----------------------------------------------------
    def _show_target(self) -> None:
        target = self.target
        with self._info_lock:
            try:
                info = self.session.feature_info(target, self.token_class)
                hist = self.session.histogram(target, self.token_class)
                scale_range = self.session.scale_range(target)
            except ValueError as error:
                self.error = str(error)
                return
            with self.hold_sync():
                self.direction_info = self._direction.describe() if self.feature == -1 and self._direction else {}
                self.feature_info = info
                self.histogram = hist
                self.scale_range = scale_range

    def _show_histogram(self) -> None:
        target = self.target
        with self._info_lock:
            self.histogram = self.session.histogram(target, self.token_class)
            self.feature_info = self.session.feature_info(target, self.token_class)

    def _refresh_info(self) -> None:
        with self._info_lock:
            self.feature_info = self.session.feature_info(self.target, self.token_class)

    def _with_range(self, entry: dict) -> dict:
        return {**entry, **self.session.scale_range(entry["feature"])}

    # -- rankings (statistics of every feature: at once when small, else in the background)
    def _start_stats(self) -> None:
        lens = self.session.lens
        if lens.stats_ready or lens.small:
            lens.compute_stats()
            self._show_rankings()
            return

        def job(ticket: Ticket) -> None:
            def progress(done: int, total: int) -> None:
                ticket.check()
                ticket.publish(lambda: setattr(self, "stats_progress",
                                               {"label": "feature statistics", "done": done, "total": total}))
            try:
                lens.compute_stats(progress=progress)
            except Superseded:
                raise
            except Exception as error:  # shown in the widget; the rest keeps working
                message = f"feature statistics failed: {error}"  # (`error` is unbound after the except block)
                ticket.publish(lambda: setattr(self, "error", message))
                return
            ticket.publish(self._finish_stats)

        self._stats_runner.submit(job)

    def _finish_stats(self) -> None:
        with self.hold_sync():
            self.stats_progress = {}
            self._guard(self._show_rankings)
            self._guard(self._refresh_info)
            if self.search:
                self.search_results = self.session.search(self.search)

    def _show_rankings(self) -> None:
        """Rankings for the current class; a class's enrichment of every feature is computed
        on first use (at once for small SAEs, else in the background)."""
        lens, name = self.session.lens, self.token_class
        if not lens.stats_ready:
            return
        if not lens.enrichment_ready(name):
            if lens.small:
                lens.enrichment_scores(name)
            else:
                self._start_enrichment(name)
        self.rankings = lens.rankings(RANK_METRICS, name)

    def _start_enrichment(self, name: str) -> None:
        def job(ticket: Ticket) -> None:
            ticket.publish(lambda: setattr(self, "stats_progress", {"label": f"enrichment of {name}"}))
            try:
                self.session.lens.enrichment_scores(name)
            except Exception as error:
                message = f"enrichment failed: {error}"
                ticket.publish(lambda: setattr(self, "error", message))
                return
            ticket.publish(self._finish_stats)

        self._stats_runner.submit(job)

    # -- generations ----------------------------------------------------------------
    def _request(self) -> SteerRequest:
        decoding = self.session.decoding(self.max_new_tokens, float(self.temperature), self.seed)
        return self.session.request(self.prompt, decoding, list(self.steering), self.target, self.scale)

    def _generate(self, sync: bool | None = None) -> None:
        try:
            request = self._request()
        except ValueError as error:
            self.error = str(error)
            return
        job = lambda ticket: self._generation_job(request, ticket)  # noqa: E731
        if sync if sync is not None else not self._live:
            self._runner.run_now(job)
        else:
            self._runner.submit(job)

    def _generation_job(self, request: SteerRequest, ticket: Ticket) -> None:
        key = _key_text(request)
        cached = self.session.cached_generation(request)
        if cached is not None:
            ticket.publish(lambda: self._set_generation({**cached, "id": ticket.id, "key": key, "cached": True},
                                                        clear_error=True))
            return
        view = GenerationView(ticket.id, request)
        baseline = self.session.cached_baseline(request)
        if baseline is not None:
            view.baseline, view.baseline_done = baseline, True
        ticket.publish(lambda: self._set_generation({**view.to_json(), "key": key}))
        shown_at = [0.0]

        def on_step(streamed: GenerationView) -> None:
            now = time.perf_counter()
            if len(streamed.steered.tokens) <= 1 or now - shown_at[0] >= STREAM_INTERVAL:  # at most every 50 ms
                shown_at[0] = now
                ticket.publish(lambda: self._set_generation({**streamed.to_json(), "id": ticket.id, "key": key}))

        try:
            ticket.check()
            final = self.session.generate(request, on_step=on_step, check=ticket.check)
        except Superseded:
            raise
        except Exception as error:  # shown in the widget, which stays usable
            view.status = "error"
            message = str(error) if isinstance(error, ValueError) else f"generation failed: {error}"
            ticket.publish(lambda: self._set_generation({**view.to_json(), "key": key}, error=message))
            return
        ticket.publish(lambda: self._set_generation({**final, "id": ticket.id, "key": key}, clear_error=True))

    def _set_generation(self, value: dict, error: str | None = None, clear_error: bool = False) -> None:
        with self.hold_sync():
            self.generation = value
            if error is not None:
                self.error = error
            elif clear_error and self.error.startswith("generation failed"):
                self.error = ""

    # -- self-explanation -------------------------------------------------------------
    def _update_self_explanation(self, force: bool = False) -> None:
        """Show the current target's sweep: from the cache, else computed (on the worker
        thread once a view shows, after the pending generation) when automatic or ``force``."""
        target = self.target
        label = self.feature
        cached = self.session.cached_self_explanation(target)
        if cached is not None:
            self.self_explanation = cached
            return
        if not (force or self.auto_self_explain):
            self._explain_runner.cancel()  # drop a sweep that has not started for another target
            self.self_explanation = {"feature": label, "status": "off",
                                     "parameters": selfexplain.n_parameters(self._binding.model),
                                     "limit": selfexplain.AUTO_MAX_PARAMETERS}
            return
        self.self_explanation = {"feature": label, "status": "running"}
        job = lambda ticket: self._self_explain_job(target, label, ticket)  # noqa: E731
        if self._live:
            self._explain_runner.submit(job)
        else:
            self._explain_runner.run_now(job)

    def _self_explain_job(self, target: Any, label: int, ticket: Ticket) -> None:
        def steering_first() -> None:  # before each batch of the sweep: a pending steering generation runs first
            while not self._runner.wait(0.1):
                ticket.check()
            ticket.check()

        try:
            payload = self.session.self_explanation(target, between_batches=steering_first)
        except Superseded:
            raise
        except Exception as error:  # shown in the panel; steering keeps working
            failed = {"feature": label, "status": "error", "message": f"self-explanation failed: {error}"}
            ticket.publish(lambda: self._set_self_explanation(label, failed))
            return
        ticket.publish(lambda: self._set_self_explanation(label, {**payload, "feature": label}))

    def _set_self_explanation(self, label: int, value: dict) -> None:
        if self.feature == label:
            self.self_explanation = value


def _key_text(request: SteerRequest) -> str:
    """A short text key of a request (the view and the kernel compare what is shown)."""
    import hashlib

    return hashlib.sha1(repr(request.key).encode()).hexdigest()[:16]
