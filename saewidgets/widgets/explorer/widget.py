"""``FeatureExplorer``: pick an SAE feature, read its logit lens, steer with it live.

The widget only orchestrates: its state lives in synced traits (so a saved
notebook can show it without a kernel), the analyses come from
``saewidgets.analysis``, and steered generations run on a worker thread
(``live.LatestRequestRunner``) so the kernel stays responsive while the slider
moves. See the class docstring for the traits.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import anywidget
import traitlets as t

from ...core.binding import Binding, bind
from ...export.mixin import ExportMixin
from . import checks
from ...sessions import lens as data
from ...sessions import self_explanations as selfexplain
from ...sessions.generation import GenerationView, LRUCache, SteerRequest, side_from_ids, steering_features
from ...core.locks import model_lock
from ..live import LatestRequestRunner, Superseded, Ticket

STATIC = Path(__file__).resolve().parents[2] / "static"
# Without the bundle (a source checkout where js/ was not built) the widget still works from
# Python, and its view says how to build the front end.
MISSING_ESM = """export default { render({ el }) {
  el.textContent = "saewidgets: the front end is not built. Run `npm install && npm run build` in js/ "
    + "(pip install -e . does it), then restart the kernel.";
} };"""
DEFAULT_PROMPT = "The word"
MAX_NEW_TOKENS = 256
STREAM_INTERVAL = 0.05  # seconds between streamed updates of a running generation
RANK_METRICS = ("skew", "kurtosis", "std", "enrichment")
VALIDATED = ("feature", "scale", "prompt", "max_new_tokens", "temperature", "seed", "token_class", "rank_by",
             "steering")


class FeatureExplorer(ExportMixin, anywidget.AnyWidget):
    """Explore one SAE feature at a time, live.

    >>> model, sae = sw.organism()
    >>> explorer = sw.FeatureExplorer(model, sae, feature=3, prompt="I painted the wall")
    >>> explorer.feature = 12      # the view follows; moving its slider updates explorer.scale

    It shows a feature picker (index, search over top tokens and explanations,
    rankings by logit-weight std / skew / kurtosis / token-class enrichment), the
    feature's logit histogram split by a token class with its statistics and top
    promoted / suppressed tokens, steering: baseline and steered
    continuations side by side, regenerated whenever the scale, the prompt, the
    decoding settings or the extra steering entries change, and the feature's
    self-explanation (``sw.self_explain``: one batched sweep per feature, cached; the
    slider picks the sweep row of the same size relative to the residual stream, see
    ``saewidgets.sessions.self_explanations``), with its metric curves and best explanations.

    Parameters:
        model, sae: a model (``sw.load_model`` spec) and its ``sw.SAE``, or a ``Binding``.
        feature, prompt, scale, token_class, max_new_tokens, temperature, seed: initial state.
        classes: extra token classes, ``{name: words | regex string | token ids}``
            (a string is a regular expression over decoded tokens, a list of strings
            a word list, a list of ints token ids), added to the built-in classes.
        explanations: ``{feature: text}`` or a DataFrame with ``feature`` and
            ``explanation`` (or ``description``) columns; searchable, shown with the feature.
        steering: extra ``[(feature, scale), ...]`` entries steered together with the
            current feature.
        typical_activation: a typical (e.g. max) activation per feature, a sequence or
            ``{feature: value}``; the slider then spans about twice that.
        bins: histogram bins. debounce: seconds of quiet a burst of changes must end with
            before a generation starts (a lone change starts at once).
        remote: run generations through NDIF (``True``; ``"local"`` tests the same path
            locally); tokens then arrive when a generation ends instead of streaming.
        auto_self_explain: explain each feature as it is shown (a sweep per feature, after
            its steered generation). Default: on for models up to 200M parameters; else a
            button in the panel (or ``explorer.self_explain()``) explains on demand.
        self_explain_options: keyword arguments for ``sw.self_explain`` (``template``,
            ``layer``, ``scales``, ``max_new_tokens``, ``layer_map``, ...).

    Traits (synced with the view): ``feature``, ``scale``, ``prompt``,
    ``max_new_tokens``, ``temperature``, ``seed``, ``steering`` (list of
    ``{feature, scale, max, linear}``), ``token_class``, ``rank_by``, ``search``;
    computed: ``feature_info``, ``histogram``, ``scale_range``, ``rankings``,
    ``search_results``, ``generation`` (the latest baseline/steered tokens),
    ``busy``, ``error``, ``stats_progress``, ``self_explanation`` (the sweep's rows,
    chosen and best explanations, chart spec, and the row picked for the slider);
    ``auto_self_explain`` (the panel's checkbox).

    Generations start once a view is showing (on a worker thread, newest request
    wins); without a view, trait changes generate synchronously.
    """

    _esm = STATIC / "widget.js" if (STATIC / "widget.js").is_file() else MISSING_ESM
    _css = STATIC / "widget.css" if (STATIC / "widget.css").is_file() else ""
    _kind = t.Unicode("explorer").tag(sync=True)

    title = t.Unicode("").tag(sync=True)
    n_features = t.Int(0).tag(sync=True)

    # the chosen feature and what is shown about it
    feature = t.Int(0).tag(sync=True)
    feature_info = t.Dict().tag(sync=True)
    class_names = t.List(t.Unicode()).tag(sync=True)
    token_class = t.Unicode("").tag(sync=True)
    histogram = t.Dict().tag(sync=True)

    # picking features
    rank_by = t.Unicode("skew").tag(sync=True)
    rankings = t.Dict().tag(sync=True)
    stats_progress = t.Dict().tag(sync=True)
    search = t.Unicode("").tag(sync=True)
    search_results = t.List().tag(sync=True)

    # steering
    scale = t.Float(0.0).tag(sync=True)
    scale_range = t.Dict().tag(sync=True)
    steering = t.List(t.Dict()).tag(sync=True)
    prompt = t.Unicode(DEFAULT_PROMPT).tag(sync=True)
    max_new_tokens = t.Int(20).tag(sync=True)
    temperature = t.Float(0.0).tag(sync=True)
    seed = t.Int(0).tag(sync=True)
    generation = t.Dict().tag(sync=True)

    # status
    busy = t.Bool(False).tag(sync=True)
    error = t.Unicode("").tag(sync=True)

    # the self-explanation panel: status, the sweep (rows, chosen, best, chart spec) and
    # the row picked for the slider's scale (explorer_selfexplain.select)
    self_explanation = t.Dict().tag(sync=True)
    auto_self_explain = t.Bool(False).tag(sync=True)

    def __init__(
        self,
        model: Any,
        sae: Any = None,
        feature: int = 0,
        prompt: str = DEFAULT_PROMPT,
        *,
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
        binding = model if isinstance(model, Binding) and sae is None else bind(model, sae, hook)
        self._binding = binding
        self._ready = False
        self._live = False  # becomes True once a view says it is showing
        self._bins = checks.check_bins(bins)
        self._remote = remote
        self._lens = data.FeatureLens(binding, classes=classes, remote=remote)
        self._explanations = checks.normalise_explanations(explanations, binding.d_sae)
        self._typical = checks.normalise_typical_activation(typical_activation, binding.d_sae)
        self._results = LRUCache(256)  # request key -> finished generation JSON
        self._baselines = LRUCache(32)  # baseline key -> baseline tokens
        self._runner = LatestRequestRunner(debounce, on_busy=self._on_busy, name="saewidgets-explorer")
        self._stats_runner = LatestRequestRunner(0.0, name="saewidgets-explorer-stats")
        self._explain_runner = LatestRequestRunner(0.0, name="saewidgets-explorer-self-explain")
        self._explainer = selfexplain.SelfExplanations(binding, self_explain_options, remote=remote,
                                                       hook_norm=self._lens.reference_norm)

        # Arguments are checked strictly (ValueError) here; later changes report in `error`.
        feature = binding.check_feature(feature)
        checks.check_prompt(prompt)
        scale = checks.check_scale(scale)
        checks.check_decoding(max_new_tokens, temperature, seed, MAX_NEW_TOKENS)
        names = self._lens.class_names
        token_class = token_class or data.default_class(names)
        if token_class not in names:
            raise ValueError(f"unknown token class {token_class!r}; choose one of {names}")
        entries = [checks.check_entry(binding, entry) for entry in (steering or [])]
        if auto_self_explain is None:
            auto_self_explain = selfexplain.auto_default(binding.model)
        elif not isinstance(auto_self_explain, bool):
            raise ValueError(f"auto_self_explain must be True, False or None (by model size), got {auto_self_explain!r}")

        super().__init__(
            title=data.title(binding), n_features=binding.d_sae, feature=feature, prompt=prompt,
            scale=scale, token_class=token_class, class_names=names, max_new_tokens=max_new_tokens,
            temperature=float(temperature), seed=seed, auto_self_explain=auto_self_explain, **kwargs,
        )
        self._accepted = {name: getattr(self, name) for name in VALIDATED}
        self.on_msg(self._on_message)
        with self.hold_sync():
            self.steering = [self._with_range(e) for e in entries]
            self._start_stats()
            self._show_feature()
        self._ready = True
        self._generate(sync=True)
        self._update_self_explanation()

    # -- public API -----------------------------------------------------------------
    @property
    def binding(self) -> Binding:
        return self._binding

    def add_class(self, name: str, tokens: Any = None, *, words: Any = None, regex: str | None = None,
                  ids: Any = None, select: bool = True) -> None:
        """Add a token class (words, a regular expression or token ids) and show it.

        ``explorer.add_class("colours", ["red", "green"])``, ``add_class("caps", regex=r"^\\s?[A-Z]+$")``.
        """
        self._lens.add_class(name, tokens, words=words, regex=regex, ids=ids)
        with self.hold_sync():
            self.class_names = self._lens.class_names
            if select:
                self.token_class = name

    def refresh(self) -> None:
        """Generate again for the current state (dropping its cached result)."""
        self._results.drop(self._request().key)
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
        """The self-explanation sweep of ``feature`` (default: the current one), a DataFrame of
        ``sw.self_explain``: computed once per feature and cached (what the panel shows). For
        the current feature the panel shows it too, also when automatic explanation is off."""
        f = self.feature if feature is None else self._binding.check_feature(feature)
        frame = self._explainer.frame(f)
        if f == self.feature:
            self._update_self_explanation()
        return frame

    @property
    def stats(self) -> Any:
        """Logit-weight statistics of every feature (a DataFrame), once computed."""
        return self._lens.stats

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
        if not getattr(self, "_ready", False):
            return proposal["value"]
        try:
            return check(proposal["value"])
        except ValueError as error:
            return self._reject(proposal["trait"].name, error)

    @t.validate("feature")
    def _valid_feature(self, proposal):
        return self._checked(proposal, self._binding.check_feature)

    @t.validate("scale")
    def _valid_scale(self, proposal):
        return self._checked(proposal, checks.check_scale)

    @t.validate("prompt")
    def _valid_prompt(self, proposal):
        return self._checked(proposal, checks.check_prompt)

    @t.validate("max_new_tokens")
    def _valid_tokens(self, proposal):
        return self._checked(proposal, lambda n: checks.check_max_new_tokens(n, MAX_NEW_TOKENS))

    @t.validate("temperature")
    def _valid_temperature(self, proposal):
        return self._checked(proposal, checks.check_temperature)

    @t.validate("seed")
    def _valid_seed(self, proposal):
        return self._checked(proposal, checks.check_seed)

    @t.validate("token_class")
    def _valid_class(self, proposal):
        return self._checked(proposal, lambda name: checks.check_choice(name, self._lens.class_names, "token class"))

    @t.validate("rank_by")
    def _valid_rank(self, proposal):
        return self._checked(proposal, lambda name: checks.check_choice(name, RANK_METRICS, "ranking"))

    @t.validate("steering")
    def _valid_steering(self, proposal):
        return self._checked(proposal, lambda entries: [self._with_range(checks.check_entry(self._binding, e))
                                                        for e in entries])

    # -- reactions ------------------------------------------------------------------
    @t.observe("feature")
    def _feature_changed(self, change):
        if self._ready and change["old"] != change["new"]:
            self.error = ""
            self._show_feature()
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
            self.search_results = data.search_features(
                change["new"], self._lens.top_token_labels(), self._explanations)

    @t.observe("scale", "steering", "prompt", "max_new_tokens", "temperature", "seed")
    def _steering_changed(self, change):
        if self._ready and change["old"] != change["new"]:
            self.error = ""
            self._generate()
            if change["name"] == "scale":
                self._select_self_explanation()

    @t.observe("auto_self_explain")
    def _auto_explain_changed(self, change):
        if self._ready and change["new"] and not change["old"]:
            self._update_self_explanation()

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "ready":
            self._live = True
            if self.generation.get("status") != "done" or self._shown_key() != self._request().key:
                self._generate()
        elif kind == "regenerate":
            self._results.drop(self._request().key)
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

    # -- the feature's logit lens ---------------------------------------------------
    def _show_feature(self) -> None:
        f = self.feature
        try:
            info = self._lens.feature_info(f, self._explanations.get(f), self.token_class)
            hist = self._lens.histogram(f, self.token_class, self._bins)
        except ValueError as error:
            self.error = str(error)
            return
        with self.hold_sync():
            self.feature_info = info
            self.histogram = hist
            self.scale_range = checks.scale_range(self._lens.decoder_norm(f), self._lens.reference_norm(),
                                                self._typical.get(f))

    def _show_histogram(self) -> None:
        self.histogram = self._lens.histogram(self.feature, self.token_class, self._bins)
        self.feature_info = self._lens.feature_info(self.feature, self._explanations.get(self.feature),
                                                    self.token_class)

    def _with_range(self, entry: dict) -> dict:
        f = entry["feature"]
        rng = checks.scale_range(self._lens.decoder_norm(f), self._lens.reference_norm(), self._typical.get(f))
        return {**entry, **rng}

    # -- rankings (statistics of every feature: at once when small, else in the background)
    def _start_stats(self) -> None:
        if self._lens.stats_ready or self._lens.small:
            self._lens.compute_stats()
            self._show_rankings()
            return

        def job(ticket: Ticket) -> None:
            def progress(done: int, total: int) -> None:
                ticket.check()
                ticket.publish(lambda: setattr(self, "stats_progress",
                                               {"label": "feature statistics", "done": done, "total": total}))
            try:
                self._lens.compute_stats(progress=progress)
            except Superseded:
                raise
            except Exception as error:  # shown in the widget; the rest keeps working
                ticket.publish(lambda: setattr(self, "error", f"feature statistics failed: {error}"))
                return
            ticket.publish(self._finish_stats)

        self._stats_runner.submit(job)

    def _finish_stats(self) -> None:
        with self.hold_sync():
            self.stats_progress = {}
            self._guard(self._show_rankings)
            self.feature_info = self._lens.feature_info(self.feature, self._explanations.get(self.feature),
                                                        self.token_class)
            if self.search:
                self.search_results = data.search_features(self.search, self._lens.top_token_labels(),
                                                           self._explanations)

    def _show_rankings(self) -> None:
        """Rankings for the current class; a class's enrichment of every feature is computed
        on first use (at once for small SAEs, else in the background)."""
        lens, name = self._lens, self.token_class
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
                self._lens.enrichment_scores(name)
            except Exception as error:
                ticket.publish(lambda: setattr(self, "error", f"enrichment failed: {error}"))
                return
            ticket.publish(self._finish_stats)

        self._stats_runner.submit(job)

    # -- generations ----------------------------------------------------------------
    def _request(self) -> SteerRequest:
        return SteerRequest(
            prompt=self.prompt,
            features=steering_features(self.feature, self.scale, self.steering),
            max_new_tokens=self.max_new_tokens,
            temperature=float(self.temperature),
            seed=self.seed,
        )

    def _shown_key(self) -> tuple | None:
        g = self.generation
        if not g:
            return None
        features = tuple((int(f), float(s)) for f, s in g.get("features", []))
        return (g.get("prompt"), g.get("max_new_tokens"), g.get("temperature"), g.get("seed"), features)

    def _generate(self, sync: bool | None = None) -> None:
        request = self._request()
        job = lambda ticket: self._generation_job(request, ticket)  # noqa: E731
        if sync if sync is not None else not self._live:
            self._runner.run_now(job)
        else:
            self._runner.submit(job)

    def _generation_job(self, request: SteerRequest, ticket: Ticket) -> None:
        cached = self._results.get(request.key)
        if cached is not None:
            ticket.publish(lambda: self._set_generation({**cached, "id": ticket.id, "cached": True}, clear_error=True))
            return
        view = GenerationView(ticket.id, request)
        baseline = self._baselines.get(request.baseline_key)
        if baseline is not None:
            view.baseline, view.baseline_done = baseline, True
        ticket.publish(lambda: self._set_generation(view.to_json()))
        decode = self._lens.token_string
        start = time.perf_counter()
        shown_at = [0.0]

        def on_step(step: Any) -> None:
            ticket.check()
            b, s = step.baseline_ids[0], step.steered_ids[0]
            view.add_step(None if b is None else (decode(b), step.baseline_logprobs[0]),
                          None if s is None else (decode(s), step.steered_logprobs[0]))
            now = time.perf_counter()
            if step.step == 0 or now - shown_at[0] >= STREAM_INTERVAL:  # stream, at most every 50 ms
                shown_at[0] = now
                ticket.publish(lambda: self._set_generation(view.to_json()))

        from ...steering.steer import steer

        try:
            with model_lock(self._binding.model):
                ticket.check()
                result = steer(self._binding, prompt=request.prompt, features=request.feature_scales(),
                               max_new_tokens=request.max_new_tokens, temperature=request.temperature,
                               seed=request.seed, on_step=on_step, progress=False, remote=self._remote)
        except Superseded:
            raise
        except Exception as error:  # shown in the widget, which stays usable
            view.status = "error"
            message = f"generation failed: {error}" if not isinstance(error, ValueError) else str(error)
            ticket.publish(lambda: self._set_generation(view.to_json(), error=message))
            return
        base, steered = result.baseline_runs[0], result.steered_runs[0]
        view.baseline = side_from_ids(base.ids, base.logprobs, decode, base.ended)
        view.steered = side_from_ids(steered.ids, steered.logprobs, decode, steered.ended)
        view.status, view.seconds = "done", time.perf_counter() - start
        final = view.to_json()
        self._baselines.put(request.baseline_key, view.baseline)
        self._results.put(request.key, final)
        ticket.publish(lambda: self._set_generation(final, clear_error=True))

    def _set_generation(self, value: dict, error: str | None = None, clear_error: bool = False) -> None:
        with self.hold_sync():
            self.generation = value
            if error is not None:
                self.error = error
            elif clear_error and self.error.startswith("generation failed"):
                self.error = ""


    # -- self-explanation -------------------------------------------------------------
    def _update_self_explanation(self, force: bool = False) -> None:
        """Show the current feature's sweep: from the cache, else computed (on the worker
        thread once a view shows, after the pending generation) when automatic or ``force``."""
        f = self.feature
        cached = self._explainer.cached(f)
        if cached is not None:
            self.self_explanation = selfexplain.select(cached, self.scale)
            return
        if not (force or self.auto_self_explain):
            self._explain_runner.cancel()  # drop a sweep that has not started for another feature
            self.self_explanation = {"feature": f, "status": "off",
                                     "parameters": selfexplain.n_parameters(self._binding.model),
                                     "limit": selfexplain.AUTO_MAX_PARAMETERS}
            return
        self.self_explanation = {"feature": f, "status": "running"}
        job = lambda ticket: self._self_explain_job(f, ticket)  # noqa: E731
        if self._live:
            self._explain_runner.submit(job)
        else:
            self._explain_runner.run_now(job)

    def _self_explain_job(self, feature: int, ticket: Ticket) -> None:
        while not self._runner.wait(0.1):  # steering first: its generation is what the user waits for
            ticket.check()
        ticket.check()
        try:
            payload = self._explainer.compute(feature)
        except Exception as error:  # shown in the panel; steering keeps working
            failed = {"feature": feature, "status": "error", "message": f"self-explanation failed: {error}"}
            ticket.publish(lambda: self._set_self_explanation(feature, failed))
            return
        ticket.publish(lambda: self._set_self_explanation(feature, selfexplain.select(payload, self.scale)))

    def _set_self_explanation(self, feature: int, value: dict) -> None:
        if self.feature == feature:
            self.self_explanation = value

    def _select_self_explanation(self) -> None:
        """The slider moved: pick the sweep's row for the new scale (no computation)."""
        cached = self._explainer.cached(self.feature)
        if cached is not None:
            self.self_explanation = selfexplain.select(cached, self.scale)

    def _self_explanation_for(self, feature: int, how: Any = True) -> dict:
        """The ``self_explanation`` trait for ``feature`` at the current scale, its sweep computed
        if not cached (``saewidgets.export.snapshot`` stores it with each precomputed feature).

        ``how``: True (the explorer's own sweep), a dict of ``sw.self_explain`` options for
        this sweep, or a DataFrame ``sw.self_explain`` returned (used if it has ``feature``)."""
        feature = self._binding.check_feature(feature)
        if hasattr(how, "columns"):
            if not {"feature", "scale", "explanation", "chosen", "composite"} <= set(how.columns):
                raise ValueError("self_explain= takes True/False, a dict of sw.self_explain options, or its DataFrame")
            if feature in set(how["feature"]):
                return selfexplain.select(self._explainer.payload(how, feature), self.scale)
            how = True
        if isinstance(how, Mapping):
            return selfexplain.select(self._explainer.compute(feature, options=how), self.scale)
        return selfexplain.select(self._explainer.compute(feature), self.scale)
