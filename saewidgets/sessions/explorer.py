"""``ExplorerSession``: everything a FeatureExplorer computes, as plain Python (no traits, no threads).

The widget (``saewidgets.widgets.explorer``) only orchestrates a session: it turns trait changes
into calls here and results into traits. Exports use the same public methods, so a shared page
shows what the live view showed. A *target* is what the explorer looks at: an SAE feature index
or an ``sw.Direction`` (a raw vector, a sum, a task or MELBO vector).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from ..core.binding import Binding
from ..core.direction import Direction
from ..engine import Decoding
from ..steering import steer, steer_variants, steering_direction
from . import checks
from .generation import GenerationView, LRUCache, Side, side_from_ids
from .lens import FeatureLens, default_class, search_features, title as binding_title
from .self_explanations import SelfExplanations

Target = int | Direction


@dataclass(frozen=True)
class SteerRequest:
    """Everything one steered generation depends on, frozen when the request is made."""

    prompt: str
    features: tuple[tuple[int, float], ...]  # (feature, scale): kept entries, then the current feature
    decoding: Decoding  # prepend_bos resolved
    direction: Direction | None = field(default=None, compare=False)  # a raw target, added at `scale`
    scale: float = 0.0

    @property
    def direction_key(self) -> str | None:
        return None if self.direction is None else self.direction.digest()

    @property
    def baseline_key(self) -> tuple:
        """What the baseline (unsteered) continuation depends on."""
        return (self.prompt, self.decoding)

    @property
    def key(self) -> tuple:
        return (*self.baseline_key, self.features, self.direction_key, self.scale if self.direction else None)

    def feature_scales(self) -> dict[int, float]:
        scales: dict[int, float] = {}
        for feature, scale in self.features:
            scales[feature] = scales.get(feature, 0.0) + scale
        return scales

    def steering(self, binding: Binding) -> Direction:
        """The total direction this request adds."""
        extra = None if self.direction is None else [(self.direction, self.scale)]
        return steering_direction(binding, self.feature_scales(), extra)


def steering_features(feature: int | None, scale: float, entries: Sequence[Mapping]) -> tuple[tuple[int, float], ...]:
    """The (feature, scale) pairs to steer with: the kept entries, then the current feature
    (whose slider wins over a kept entry for the same feature); no current feature for a raw target."""
    pairs = [(int(e["feature"]), float(e["scale"])) for e in entries if feature is None or int(e["feature"]) != feature]
    return (*pairs, (int(feature), float(scale))) if feature is not None else tuple(pairs)


class ExplorerSession:
    """The computations behind one explorer: logit lens, steering, self-explanation, caches.

    >>> session = ExplorerSession(sw.bind(model, sae))
    >>> session.feature_info(3, "starts_with_space"); session.histogram(3, "starts_with_space")
    >>> request = session.request("The word", Decoding(max_new_tokens=12), [], 3, 8.0)
    >>> session.generate(request)["steered"]["tokens"]
    """

    def __init__(self, binding: Binding, *, classes: Mapping[str, Any] | None = None, explanations: Any = None,
                 typical_activation: Any = None, bins: int = 60, remote: bool | str = False,
                 self_explain_options: Mapping[str, Any] | None = None) -> None:
        self.binding = binding
        self.remote = remote
        self.bins = checks.check_bins(bins)
        self.lens = FeatureLens(binding, classes=classes, remote=remote)
        self.explanations = checks.normalise_explanations(explanations, binding.d_sae)
        self.typical = checks.normalise_typical_activation(typical_activation, binding.d_sae)
        self.explainer = SelfExplanations(binding, self_explain_options, remote=remote,
                                          hook_norm=self.lens.reference_norm)
        self._results = LRUCache(256)  # request key -> finished generation JSON
        self._baselines = LRUCache(32)  # baseline key -> (Continuation, Side)
        self.runs = 0  # generations run (not answered from a cache)
        self.steered_rows = 0  # rows those generations ran

    # -- identity -----------------------------------------------------------------------
    @property
    def title(self) -> str:
        return binding_title(self.binding)

    @property
    def class_names(self) -> list[str]:
        return self.lens.class_names

    def default_class(self) -> str:
        return default_class(self.class_names)

    def add_class(self, name: str, tokens: Any = None, **how: Any) -> None:
        self.lens.add_class(name, tokens, **how)

    def token_string(self, token: int) -> str:
        return self.lens.token_string(token)

    def search(self, query: str) -> list[list]:
        """Features whose top tokens or explanation match ``query`` (see ``lens.search_features``)."""
        return search_features(query, self.lens.top_token_labels(), self.explanations)

    def decoding(self, max_new_tokens: int, temperature: float, seed: int, top_p: float | None = None) -> Decoding:
        """A Decoding with the SAE's ``prepend_bos`` (as ``sw.steer`` uses it)."""
        settings = Decoding(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, top_p=top_p)
        return settings.with_bos(bool(self.binding.sae.metadata.get("prepend_bos", False)))

    # -- targets ------------------------------------------------------------------------
    def target(self, value: Any) -> Direction:
        """A feature index or a direction (vector or ``sw.Direction``) as a Direction, checked."""
        if isinstance(value, Direction):
            return value.check_width(self.binding.d_model, f"the residual stream at {self.binding.site}[{self.binding.layer}]")
        if hasattr(value, "shape") or isinstance(value, (list, tuple)):
            return Direction(value, name="raw vector").check_width(self.binding.d_model)
        return Direction.feature(self.binding.sae, self.binding.check_feature(value))

    def feature_info(self, target: Target, token_class: str) -> dict:
        """Statistics, kind and top promoted / suppressed tokens (plus the explanation or the
        direction's description)."""
        if isinstance(target, Direction) and not self._is_own_feature(target):
            info = self.lens.feature_info(target, None, token_class)
            return {**info, "feature": None, "direction": target.describe()}
        f = self._index(target)
        return self.lens.feature_info(f, self.explanations.get(f), token_class)

    def histogram(self, target: Target, token_class: str) -> dict:
        index = None if isinstance(target, Direction) and not self._is_own_feature(target) else self._index(target)
        return self.lens.histogram(target if index is None else index, token_class, self.bins)

    def scale_range(self, target: Target) -> dict:
        """The slider's range for ``target`` (its norm against the residual stream's, or twice
        its typical activation when known)."""
        if isinstance(target, Direction) and not self._is_own_feature(target):
            return checks.scale_range(target.norm(), self.lens.reference_norm(), None)
        f = self._index(target)
        return checks.scale_range(self.lens.decoder_norm(f), self.lens.reference_norm(), self.typical.get(f))

    def _is_own_feature(self, target: Direction) -> bool:
        return target.is_feature and target.sae is self.binding.sae

    def _index(self, target: Target) -> int:
        if isinstance(target, Direction):
            if target.feature_index is None:
                raise ValueError(f"{target.name!r} is not one SAE feature")
            return target.feature_index
        return self.binding.check_feature(target)

    # -- steering ---------------------------------------------------------------------------
    def request(self, prompt: str, decoding: Decoding, entries: Sequence[Mapping], target: Target,
                scale: float) -> SteerRequest:
        """A steering request: the kept ``entries`` plus ``target`` at ``scale``."""
        direction = None
        if isinstance(target, Direction) and not self._is_own_feature(target):
            direction, feature = target, None
        else:
            feature = self._index(target)
        return SteerRequest(prompt, steering_features(feature, scale, entries), decoding, direction, float(scale))

    def generations(self) -> list[dict]:
        """The finished generations this session holds (oldest first), as the ``generation`` JSON."""
        return self._results.values()

    def cached_generation(self, request: SteerRequest) -> dict | None:
        return self._results.get(request.key)

    def drop(self, request: SteerRequest) -> None:
        self._results.drop(request.key)

    def cached_baseline(self, request: SteerRequest) -> Side | None:
        hit = self._baselines.get(request.baseline_key)
        return None if hit is None else hit[1]

    def generate(self, request: SteerRequest, on_step: Callable[[GenerationView], None] | None = None,
                 check: Callable[[], None] | None = None) -> dict:
        """Baseline and steered continuations for ``request`` (``sw.steer``), as the ``generation``
        JSON. A cached baseline is reused: only the steered rows run. ``on_step(view)`` is called
        as tokens arrive; ``check()`` may raise to abandon the run (a newer request came)."""
        cached = self._results.get(request.key)
        if cached is not None:
            return cached
        view = GenerationView(0, request)
        hit = self._baselines.get(request.baseline_key)
        if hit is not None:
            view.baseline, view.baseline_done = hit[1], True
        decode = self.token_string

        def relay(step: Any) -> None:
            if check is not None:
                check()
            b, s = step.baseline_ids[0], step.steered_ids[0]
            view.add_step(None if b is None else (decode(b), step.baseline_logprobs[0]),
                          None if s is None else (decode(s), step.steered_logprobs[0]))
            if on_step is not None:
                on_step(view)

        start = time.perf_counter()
        result = steer(self.binding, prompt=request.prompt, features=request.feature_scales(),
                       directions=None if request.direction is None else [(request.direction, request.scale)],
                       decoding=request.decoding, baseline=None if hit is None else [hit[0]],
                       on_step=relay, progress=False, remote=self.remote)
        self.runs += 1
        self.steered_rows += (0 if hit is not None else 1) + (1 if bool(result.vector.any()) else 0)
        base, steered = result.baseline_runs[0], result.steered_runs[0]
        view.baseline = side_from_ids(base.ids, base.logprobs, decode, base.ended)
        view.steered = side_from_ids(steered.ids, steered.logprobs, decode, steered.ended)
        view.status, view.seconds = "done", time.perf_counter() - start
        final = view.to_json()
        self._baselines.put(request.baseline_key, (base, view.baseline))
        self._results.put(request.key, final)
        return final

    def steered_grid(self, request: SteerRequest, target: Target, scales: Sequence[float], *, batch_size: int = 64,
                     progress: bool = False) -> tuple[Side, list[Side]]:
        """The baseline and the steered continuation at every scale of ``target`` (the request's
        kept entries added to each), as the live view would show them; batched."""
        entries = [{"feature": f, "scale": s} for f, s in request.features
                   if not (self._is_feature_target(target) and f == self._index(target))]
        directions = [self.request(request.prompt, request.decoding, entries, target, scale).steering(self.binding)
                      for scale in scales]
        hit = self._baselines.get(request.baseline_key)
        base, runs = steer_variants(self.binding, request.prompt, directions, request.decoding,
                                    baseline=None if hit is None else hit[0], batch_size=batch_size,
                                    remote=self.remote, progress=progress)
        decode = self.token_string
        baseline = side_from_ids(base.ids, base.logprobs, decode, base.ended)
        self._baselines.put(request.baseline_key, (base, baseline))
        return baseline, [side_from_ids(r.ids, r.logprobs, decode, r.ended) for r in runs]

    def _is_feature_target(self, target: Target) -> bool:
        return not isinstance(target, Direction) or self._is_own_feature(target)

    # -- self-explanation -------------------------------------------------------------------
    def self_explanation(self, target: Target, options: Mapping[str, Any] | None = None,
                         between_batches: Callable[[], None] | None = None) -> dict:
        """The self-explanation panel's JSON for ``target`` (one sweep, cached unless ``options``).
        ``between_batches`` runs between its batches (the explorer lets steering go first there)."""
        key = self._index(target) if self._is_feature_target(target) else target
        return self.explainer.compute(key, options=options, between_batches=between_batches)

    def cached_self_explanation(self, target: Target) -> dict | None:
        key = self._index(target) if self._is_feature_target(target) else target
        return self.explainer.cached(key)

    def self_explanation_frame(self, target: Target) -> Any:
        key = self._index(target) if self._is_feature_target(target) else target
        return self.explainer.frame(key)
