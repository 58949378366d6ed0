"""Self-explanation of SAE features (SelfIE / Patchscopes; Kharlapenko & neverix 2024).

The model describes a feature itself: the residual stream at every placeholder position of a
prompt such as ``The word "X" means`` is REPLACED by ``scale * d`` (``d = W_dec[feature]``)
and the model generates. A sweep over scales runs as one batched nnsight generation per chunk
of rows (features x scales), and metrics computed from the same pass pick the scale.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from ..core.binding import Binding, bind
from ..core.direction import Direction
from ..core.model import load_model, model_layout
from ..core.sae import SAE, check_index
from ..engine import Decoding, Edit, NonFiniteError, Read, Row, generate, trace
from ..engine.decoding import LIMITS
from . import cache, metrics
from .defaults import self_explain_defaults
from .layer_map import LayerMap, fit_layer_map, residual_point
from .prompts import DEFAULT_PLACEHOLDER, SelfExplainPrompt, build_prompt, cut_explanation

DEFAULT_MAX_NEW_TOKENS = 16
DEFAULT_BATCH_SIZE = 256

__all__ = ["self_explain", "self_explanation_chart", "explanation_at", "best_explanations", "fit_layer_map", "LayerMap"]
N_BEST = 3


def self_explain(
    model: Any,
    sae: SAE | Binding | None = None,
    feature: Any = None,
    *,
    features: Any = None,
    scales: Sequence[float] | np.ndarray | torch.Tensor | None = None,
    template: str | Sequence[dict] | None = None,
    layer: int | None = None,
    probe_layer: int | None = None,
    max_new_tokens: int | None = None,
    temperature: float = 0.0,
    top_p: float | None = None,
    seed: int = 0,
    placeholder: str | None = None,
    stop: Sequence[str] | None = None,
    min_scale: float | None = None,
    failure_threshold: float | None = None,
    batch_size: int | None = None,
    layer_map: LayerMap | None = None,
    defaults: bool = True,
    remote: Any = False,
    cache_dir: Any = None,
    progress: bool = True,
    between_batches: Callable[[], None] | None = None,
) -> pd.DataFrame:
    """Have the model explain ``feature`` (or ``features=[...]``) over a sweep of scales.

    Returns a DataFrame with one row per (feature, scale) and these columns:

    - ``feature``, ``scale``; ``relative_norm`` = ``||scale * d||`` / reference norm.
    - ``explanation``: the generation cut at the template's stop strings (``generated``: all of it).
    - ``default_answer``: the explanation is what the prompt answers with nothing patched in
      (or with the zero vector): no evidence about the direction, so it never counts as one.
    - ``self_similarity``: ``cos(r_a, d) - cos(r_0, d)``, per row, with ``r_a`` the residual
      entering block ``probe_layer`` at the last prompt position when the placeholder holds
      ``a * d`` (``r_0``: the placeholder holds the zero vector).
    - ``entropy``: ``H(a)`` of the next-token distribution at the last prompt position (nats);
      ``entropy_change`` = ``H(a) - H(0)``.
    - ``cross_entropy``: ``H(p_a, p_base) = -sum_v p_a(v) log p_base(v)``, where ``p_base`` is the
      next-token distribution when the placeholder holds the mean token embedding rescaled to
      the reference norm: a "generic word" of the size a residual has at that layer.
      Low when the patched prompt confidently predicts what a prompt about a generic word
      predicts (the template still works); high when the patch has broken the prompt.
    - ``eligible`` (``scale >= min_scale`` and not a default answer), ``composite``
      ``M = 0.4 * minmax(selfsim) - 0.6 * minmax(CE)`` over eligible scales (NaN for the others),
      ``chosen`` (the scale with the highest M) and ``failed`` (max self-similarity below
      ``failure_threshold``, or no eligible scale: every explanation was a default answer).

    ``df.attrs``: ``chosen_scale``, ``chosen_explanation``, ``failed`` and
    ``best_explanations`` (the 3 distinct explanations with the best composite) (a value
    for one feature, a dict ``feature -> value`` for several), plus ``layer``, ``probe_layer``,
    ``prompt``, ``positions``, ``reference_norm``, ``min_scale``, ``unpatched_explanation``
    (what the prompt answers with nothing patched in), ``zero_explanation`` (with the zero
    vector patched in), ``baseline_explanation``. ``chosen_explanation`` is "" when every
    explanation is one of those default answers.

    Parameters:
        model, sae: an nnsight/transformers model and an SAE, or a ``Binding`` in either slot
            (then ``self_explain(binding, feature)`` works too).
        feature: a feature index, a list of them, an ``sw.Direction``, or raw directions (a float
            tensor of length d_model, or n x d_model); ``features=`` is the same.
        scales: the sweep. Default: 32 scales from 0 to where ``||scale * d||`` is twice the
            reference norm = the median residual norm entering block ``layer`` over the prompt.
        template: ``"meaning"`` (default) or ``"repeat"`` (chat wording when the tokenizer has a
            chat template, else ``The word "X" means`` / ``Repeat "X" four times: "X" "X" "``),
            a raw text with the placeholder, or chat messages (a final assistant message is
            continued).
        layer: block whose input is replaced at the placeholder (default ~1/9 of the depth);
        probe_layer: block whose input is read for self-similarity (default ~8/9; may equal
            the number of blocks: the residual after the last block). Must exceed ``layer``.
        max_new_tokens, temperature, top_p, seed: decoding (greedy by default; ``sw.Decoding``).
        min_scale: scales below it are left out of the composite. Default: where
            ``||scale * d||`` is 0.1 x the reference norm, the paper's 10 on a 0..200 sweep.
        batch_size: rows per generation (three reference rows are added once per call).
        layer_map: a ``LayerMap`` from ``fit_layer_map`` (SAE layer -> ``layer``): inject
            ``d @ A`` rescaled to ``||d||`` instead of ``d``, for models too shallow for the
            SAE's basis to carry over to the injection layer (self-similarity still uses ``d``).
            ``layer`` defaults to the map's target.
        defaults: use the settings attached to the SAE (``set_self_explain_defaults``; the
            organism ships its fitted layer map) where an argument is not given.
        remote: passed to nnsight (``True`` for NDIF, ``"local"`` to test serialisation).
        cache_dir: folder for the JSON cache (default: ``$SAEWIDGETS_CACHE`` if set, else
            no cache; ``False``: off).
        between_batches: called before each batch of rows (the model is free then); the explorer
            passes one that waits while a steering generation is pending, or raises to stop.
    """
    if features is not None:
        if feature is not None:
            raise ValueError("give feature= or features=, not both")
        feature = features
    if isinstance(model, Binding) and feature is None and not isinstance(sae, (SAE, Binding)):
        feature, sae = sae, None
    if feature is None:
        raise ValueError("no feature given: pass feature=<index>, features=[...], an sw.Direction, or a direction tensor")
    given = dict(template=template, layer=layer, probe_layer=probe_layer, max_new_tokens=max_new_tokens,
                 placeholder=placeholder, stop=stop, scales=scales, min_scale=min_scale,
                 failure_threshold=failure_threshold, batch_size=batch_size, layer_map=layer_map)
    sae_obj = sae.sae if isinstance(sae, Binding) else sae if isinstance(sae, SAE) else \
        model.sae if isinstance(model, Binding) else None
    attached = self_explain_defaults(sae_obj) if defaults else {}
    if layer is not None and "layer_map" in attached and given["layer_map"] is None and \
            attached["layer_map"].target != layer:
        attached.pop("layer_map")  # an explicit other layer: the attached map does not apply
    options = {**_BUILTIN_DEFAULTS, **attached, **{k: v for k, v in given.items() if v is not None}}
    layer_map, layer = options["layer_map"], options.get("layer")
    if layer_map is not None:
        if not isinstance(layer_map, LayerMap):
            raise ValueError(f"layer_map must be a LayerMap from fit_layer_map, got {type(layer_map).__name__}")
        if layer is None:
            layer = layer_map.target
        elif layer != layer_map.target:
            raise ValueError(f"layer={layer} but the layer_map injects at layer {layer_map.target}; fit a map for this layer")
    setup = _Setup.build(model, sae, layer, options.get("probe_layer"))
    if layer_map is not None and setup.sae_point is not None and layer_map.source != setup.sae_point:
        raise ValueError(
            f"the layer_map starts at residual point {layer_map.source} but the SAE reads point "
            f"{setup.sae_point}; fit the map with this SAE"
        )
    items = _feature_items(setup, feature)
    for item in items:
        item.inject = item.direction if layer_map is None else layer_map.apply(item.direction[None])[0]
    decoding = Decoding(max_new_tokens=options["max_new_tokens"], temperature=temperature, top_p=top_p, seed=seed,
                        prepend_bos=False)
    batch_size = _check_positive_int(options["batch_size"], "batch_size")
    user_scales = None if options.get("scales") is None else _check_scales(options["scales"])
    prompt = build_prompt(setup.model.tokenizer, options["template"], options["placeholder"], options.get("stop"))
    failure = float(options["failure_threshold"])

    reference_norm, mean_embedding = _measure_prompt(setup, prompt, remote)
    baseline = mean_embedding / mean_embedding.norm().clamp_min(1e-12) * reference_norm
    for item in items:
        norm = float(item.direction.norm())
        if norm == 0:
            raise ValueError(f"the direction of {item.label!r} is the zero vector: nothing to explain")
        item.scales = user_scales if user_scales is not None else metrics.default_scales(reference_norm, norm)
        given_min = options.get("min_scale")
        item.min_scale = float(given_min) if given_min is not None else metrics.DEFAULT_MIN_RATIO * reference_norm / norm

    folder = cache.resolve_cache_dir(cache_dir)
    fingerprint = cache.model_fingerprint(setup.model, setup.layout) if folder else ""
    for item in items:
        if folder is None:
            continue
        item.key = cache.entry_key(
            model=fingerprint, direction=cache.tensor_digest(item.direction), prompt=prompt.input_ids.tolist(),
            positions=list(prompt.positions), layer=setup.layer, probe_layer=setup.probe_layer,
            scales=[float(s) for s in item.scales], max_new_tokens=decoding.max_new_tokens,
            generate={k: v for k, v in decoding.to_dict().items() if k != "max_new_tokens"},
            layer_map=None if layer_map is None else layer_map.digest(),
        )
        item.path = cache.entry_path(folder, item.tag, item.key)
        item.entry = cache.load_entry(item.path, item.key)

    _run_missing(setup, prompt, items, baseline, decoding, batch_size, remote, progress, between_batches)
    df = _assemble(setup, prompt, items, reference_norm, failure)
    df.attrs["mapped"] = layer_map is not None
    return df


_BUILTIN_DEFAULTS: dict[str, Any] = dict(
    template="meaning", layer=None, probe_layer=None, max_new_tokens=DEFAULT_MAX_NEW_TOKENS,
    placeholder=DEFAULT_PLACEHOLDER, stop=None, scales=None, min_scale=None,
    failure_threshold=metrics.DEFAULT_FAILURE_THRESHOLD, batch_size=DEFAULT_BATCH_SIZE, layer_map=None,
)


def _measure_prompt(setup: "_Setup", prompt: SelfExplainPrompt, remote: Any) -> tuple[float, torch.Tensor]:
    """Median residual norm entering block ``layer`` over the prompt, and the mean token embedding."""
    norms = Read("norms", setup.layer, positions="all", fn=lambda h, mask: h[0].norm(dim=-1))
    run = trace(setup.model, [Row(prompt.input_ids.tolist())], [norms], remote=remote)
    embed = setup.layout.part(setup.model._module, "embed").weight
    if embed.is_meta:
        raise ValueError("the model's weights are not loaded (meta device): load it with dispatch=True")
    mean_embedding = embed.detach().float().mean(0).cpu()
    return float(run.reads["norms"].detach().float().median()), mean_embedding


# -- setup --------------------------------------------------------------------------------
@dataclass
class _Setup:
    model: Any
    layout: Any
    sae: SAE | None
    n_layers: int
    d_model: int
    layer: int
    probe_layer: int
    sae_point: int | None  # residual point the SAE reads (see LayerMap), None without an SAE

    @classmethod
    def build(cls, model: Any, sae: Any, layer: Any, probe_layer: Any) -> "_Setup":
        if sae is None and not isinstance(model, Binding):
            nn_model = load_model(model)
            layout = model_layout(nn_model)
            n_layers = len(layout.blocks_of(nn_model._module))
            from ..core.model import hidden_size

            d_model, sae_obj, sae_point = hidden_size(nn_model._module), None, None
        else:
            binding = bind(model, sae)
            nn_model, layout, n_layers = binding.model, binding.layout, binding.n_layers
            d_model, sae_obj, sae_point = binding.d_model, binding.sae, residual_point(binding)
        default_inject, default_probe = metrics.default_layers(n_layers)
        layer = default_inject if layer is None else check_index(
            layer, n_layers, "layer", "this model has {n} blocks, and the injection point is the input of one"
        )
        if probe_layer is None:
            probe_layer = max(default_probe, layer + 1)
            probe_layer = min(probe_layer, n_layers)
        probe_layer = check_index(
            probe_layer, n_layers + 1, "probe_layer",
            "this model has {n} residual points (block inputs, then the output of the last block)",
        )
        if probe_layer <= layer:
            raise ValueError(
                f"probe_layer={probe_layer} must come after the injection layer={layer}: self-similarity "
                f"is read downstream of the patch (valid: {layer + 1}..{n_layers})"
            )
        return cls(nn_model, layout, sae_obj, n_layers, d_model, layer, probe_layer, sae_point)


@dataclass
class _Item:
    """One feature (or raw direction) to explain, and its cache entry once known."""

    label: Any
    tag: str
    direction: torch.Tensor
    inject: Any = None  # what is patched in: the direction, or its map (a tensor once set up)
    scales: Any = None  # np.ndarray once set up
    min_scale: float = 0.0
    key: str = ""
    path: Any = None
    entry: Any = None  # the cache entry (a dict) once computed or loaded


def _feature_items(setup: _Setup, feature: Any) -> list[_Item]:
    if isinstance(feature, Direction):
        feature = [feature]
    if isinstance(feature, (list, tuple)) and feature and all(isinstance(f, Direction) for f in feature):
        out = []
        for i, d in enumerate(feature):
            d.check_width(setup.d_model, "the residual stream")
            if d.is_feature and setup.sae is not None and d.sae is setup.sae:
                index = d.feature_index
                out.append(_Item(index, f"f{index}", setup.sae.W_dec[index].detach().float().cpu()))
            else:
                row = d.vector
                out.append(_Item(d.name if len(feature) == 1 else f"{d.name} ({i})", f"dir{i}-" + d.digest()[:8], row))
        labels = [item.label for item in out]
        if len(set(labels)) != len(labels):
            raise ValueError(f"directions must be distinct (by name or feature), got {labels}")
        return out
    if isinstance(feature, torch.Tensor) and feature.is_floating_point():
        rows = feature[None] if feature.ndim == 1 else feature
        if rows.ndim != 2 or rows.shape[1] != setup.d_model:
            raise ValueError(
                f"a direction must have length d_model={setup.d_model} (or be n x {setup.d_model}); "
                f"got shape {tuple(feature.shape)}"
            )
        if not torch.isfinite(rows).all():
            raise ValueError("the direction contains NaN or infinite values")
        out = []
        for i, row in enumerate(rows):
            row = row.detach().float().cpu()
            out.append(_Item(f"direction {i}", f"dir{i}-" + cache.tensor_digest(row)[:8], row))
        return out
    if setup.sae is None:
        raise ValueError("feature indices need an SAE: pass sae=..., or give a direction tensor instead")
    if isinstance(feature, torch.Tensor):
        feature = feature.reshape(-1).tolist()
    listed = feature if isinstance(feature, (list, tuple, range, np.ndarray)) else [feature]
    if len(listed) == 0:
        raise ValueError("the list of features is empty")
    indices = [setup.sae.check_feature(f.item() if isinstance(f, np.generic) else f) for f in listed]
    if len(set(indices)) != len(indices):
        raise ValueError(f"features must be distinct, got {indices}")
    W_dec = setup.sae.W_dec
    return [_Item(i, f"f{i}", W_dec[i].detach().float().cpu()) for i in indices]


def _check_positive_int(value: Any, name: str) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_scales(scales: Any) -> np.ndarray:
    try:
        values = np.asarray(scales.detach().cpu() if isinstance(scales, torch.Tensor) else scales, dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError(f"scales must be a list of numbers, got {scales!r}") from error
    if values.ndim == 0:
        values = values[None]
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"scales must be a non-empty 1-D list of numbers, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"scales must be finite numbers, got {values.tolist()}")
    limit = LIMITS["scale"]["max_abs"]
    if np.abs(values).max() > limit:
        raise ValueError(f"scales must lie within ±{limit:g} (got {np.abs(values).max():g}): give smaller scales")
    return values


# -- running ------------------------------------------------------------------------------
N_REFERENCES = 3  # zero vector, mean-embedding baseline, nothing patched


@dataclass
class _References:
    zero_probe: torch.Tensor
    zero_entropy: float
    baseline_logits: torch.Tensor
    zero_text: str
    baseline_text: str
    unpatched_text: str


def _run_missing(setup: _Setup, prompt: SelfExplainPrompt, items: list[_Item], baseline: torch.Tensor,
                 decoding: Decoding, batch_size: int, remote: Any, progress: bool,
                 between_batches: Callable[[], None] | None = None) -> None:
    """Generate every row not in the cache, in chunks of ``batch_size`` rows; save per feature.

    The first rows of the first chunk are the references (zero vector, baseline, nothing
    patched); the rows of each feature follow, in order. A feature's entry is written as soon
    as its last row is done.
    """
    from tqdm.auto import tqdm

    missing = [item for item in items if item.entry is None]
    if not missing:
        return
    vectors: list[torch.Tensor | None] = [torch.zeros(setup.d_model), baseline, None]
    owners: list[tuple[int, int]] = [(-1, 0), (-1, 1), (-1, 2)]
    for n, item in enumerate(missing):
        for s, scale in enumerate(item.scales):
            vectors.append(float(scale) * item.inject)
            owners.append((n, s))
    pending: dict[int, dict] = {n: {} for n in range(len(missing))}
    refs: dict[int, tuple] = {}
    references: _References | None = None
    ids = prompt.input_ids.tolist()
    reads = [Read("probe", setup.probe_layer), Read("logits", site="logits")]
    bar = tqdm(total=len(items), initial=len(items) - len(missing), desc="self-explain", unit="feature",
               disable=not progress)
    try:
        for start in range(0, len(vectors), batch_size):
            if between_batches is not None:
                between_batches()
            rows = [Row(ids, () if v is None else (Edit(setup.layer, v, op="replace", positions=prompt.positions),))
                    for v in vectors[start:start + batch_size]]
            try:
                run = generate(setup.model, rows, decoding, reads, remote=remote)
            except NonFiniteError as error:
                chunk = owners[start:start + batch_size]
                labels = sorted({str(missing[n].label) for n, _ in chunk if n >= 0})
                raise NonFiniteError(f"self-explanation of {', '.join(labels) or 'the references'}: {error}") from None
            texts = _decode(setup.model.tokenizer, run)
            probe, logits = run.reads["probe"].detach().float().cpu(), run.reads["logits"].detach().float().cpu()
            for j, (n, s) in enumerate(owners[start:start + batch_size]):
                row = (probe[j], logits[j], texts[j])
                if n < 0:
                    refs[s] = row
                    if len(refs) == N_REFERENCES:
                        references = _References(refs[0][0], float(metrics.entropy(refs[0][1])), refs[1][1],
                                                 refs[0][2], refs[1][2], refs[2][2])
                    continue
                pending[n][s] = row
                item = missing[n]
                if len(pending[n]) == len(item.scales):
                    assert references is not None
                    item.entry = _entry(item, pending.pop(n), references)
                    if item.path is not None:
                        cache.save_entry(item.path, item.entry)
                    bar.update(1)
    finally:
        bar.close()


def _decode(tokenizer: Any, run: Any) -> list[str]:
    """Decode each row up to (not including) its first end-of-sequence token."""
    texts = []
    for row in range(run.ids.shape[0]):
        ids, _ = run.continuation(row)
        if run.ended[row] and ids:
            ids = ids[:-1]
        texts.append(tokenizer.decode(ids, skip_special_tokens=True))
    return texts


def _entry(item: _Item, rows: dict[int, tuple], refs: _References) -> dict:
    """Per-scale metrics of one feature from its rows and the references, JSON-ready."""
    order = sorted(rows)
    probe = torch.stack([rows[s][0] for s in order])
    logits = torch.stack([rows[s][1] for s in order])
    cos = metrics.row_cosine(probe, item.direction)
    cos0 = float(metrics.row_cosine(refs.zero_probe[None], item.direction)[0])
    ent = metrics.entropy(logits)
    entry = {
        "key": item.key,
        "label": item.label,
        "scales": [float(s) for s in item.scales],
        "generated": [rows[s][2] for s in order],
        "self_similarity": (cos - cos0).tolist(),
        "entropy": ent.tolist(),
        "entropy_change": (ent - refs.zero_entropy).tolist(),
        "cross_entropy": metrics.cross_entropy(logits, refs.baseline_logits).tolist(),
        "zero_generated": refs.zero_text,
        "baseline_generated": refs.baseline_text,
        "unpatched_generated": refs.unpatched_text,
    }
    for name in ("self_similarity", "entropy", "entropy_change", "cross_entropy"):
        if not np.isfinite(entry[name]).all():
            raise NonFiniteError(f"self-explanation of {item.label!r}: the {name.replace('_', ' ')} came out inf/NaN "
                                 "(a scale too large for the model's number range?); use smaller scales")
    return entry


# -- assembling ---------------------------------------------------------------------------
def _assemble(setup: _Setup, prompt: SelfExplainPrompt, items: list[_Item], reference_norm: float,
              failure_threshold: float) -> pd.DataFrame:
    frames, chosen_scale, chosen_text, failed, best_texts = [], {}, {}, {}, {}
    for item in items:
        entry = item.entry
        scales = np.asarray(entry["scales"], dtype=np.float64)
        selfsim = np.asarray(entry["self_similarity"], dtype=np.float64)
        ce = np.asarray(entry["cross_entropy"], dtype=np.float64)
        explanations = [cut_explanation(text, prompt.stop) for text in entry["generated"]]
        defaults = _default_answers(entry, prompt.stop)
        default = np.array([not text or text in defaults for text in explanations])
        large_enough = scales >= item.min_scale
        eligible = large_enough & ~default
        if not eligible.any():  # every explanation is a default answer: pick among them, flagged failed
            eligible = large_enough if large_enough.any() else np.ones_like(large_enough)
            no_explanation = True
        else:
            no_explanation = False
        score = metrics.composite(selfsim, ce, eligible)
        best = int(np.nanargmax(score))
        is_failed = bool(np.max(selfsim) < failure_threshold) or no_explanation
        frames.append(pd.DataFrame({
            "feature": [item.label] * len(scales),
            "scale": scales,
            "relative_norm": scales * float(item.direction.norm()) / reference_norm,
            "explanation": explanations,
            "default_answer": default,
            "generated": entry["generated"],
            "self_similarity": selfsim,
            "entropy": entry["entropy"],
            "entropy_change": entry["entropy_change"],
            "cross_entropy": ce,
            "eligible": eligible,
            "composite": score,
            "chosen": np.arange(len(scales)) == best,
            "failed": is_failed,
        }))
        best_texts[item.label] = _best_texts(np.where(default, np.nan, score), explanations)
        chosen_scale[item.label] = float(scales[best])
        chosen_text[item.label] = "" if no_explanation else explanations[best]  # a default answer is no headline
        failed[item.label] = is_failed
    df = pd.concat(frames, ignore_index=True)
    single = len(items) == 1

    def pick(values: dict) -> Any:
        return next(iter(values.values())) if single else values

    df.attrs.update(
        chosen_scale=pick(chosen_scale),
        chosen_explanation=pick(chosen_text),
        failed=pick(failed),
        best_explanations=pick(best_texts),
        layer=setup.layer,
        probe_layer=setup.probe_layer,
        prompt=prompt.text,
        positions=list(prompt.positions),
        reference_norm=reference_norm,
        min_scale=pick({item.label: item.min_scale for item in items}),
        baseline_explanation=cut_explanation(items[0].entry["baseline_generated"], prompt.stop),
        unpatched_explanation=cut_explanation(items[0].entry.get("unpatched_generated", ""), prompt.stop),
        zero_explanation=cut_explanation(items[0].entry.get("zero_generated", ""), prompt.stop),
    )
    return df


def _default_answers(entry: dict, stop: Sequence[str]) -> set[str]:
    """What the prompt answers with nothing patched in, or with the zero vector: not explanations."""
    return {cut_explanation(entry.get(name) or "", stop) for name in ("unpatched_generated", "zero_generated")} - {""}


def _best_texts(score: np.ndarray, explanations: list[str], n: int = N_BEST) -> list[str]:
    """The ``n`` distinct non-empty explanations with the highest composite score."""
    out: list[str] = []
    for i in np.argsort(-np.nan_to_num(score, nan=-np.inf), kind="stable"):
        if np.isnan(score[i]):
            break
        if explanations[i] and explanations[i] not in out:
            out.append(explanations[i])
        if len(out) == n:
            break
    return out


def best_explanations(df: pd.DataFrame, n: int = N_BEST, feature: Any = None) -> list[str]:
    """The ``n`` distinct explanations with the highest composite score (of ``feature`` if
    ``df`` holds several)."""
    df = _one_feature(df, feature)
    score = df["composite"].to_numpy(dtype=float)
    if "default_answer" in df:
        score = np.where(df["default_answer"].to_numpy(dtype=bool), np.nan, score)
    return _best_texts(score, df["explanation"].tolist(), n)


def explanation_at(df: pd.DataFrame, scale: float, feature: Any = None) -> pd.Series:
    """The row of ``df`` whose scale is nearest to ``scale`` (e.g. a slider's value)."""
    df = _one_feature(df, feature)
    return df.iloc[int(np.argmin(np.abs(df["scale"].to_numpy(dtype=float) - float(scale))))]


def _one_feature(df: pd.DataFrame, feature: Any) -> pd.DataFrame:
    labels = list(dict.fromkeys(df["feature"]))
    if feature is None:
        if len(labels) > 1:
            raise ValueError(f"the DataFrame holds {len(labels)} features; pick one with feature=... ({labels})")
        return df
    if feature not in labels:
        raise ValueError(f"feature {feature!r} is not in the DataFrame (it has {labels})")
    return df[df["feature"] == feature]


def self_explanation_chart(df: pd.DataFrame, current_scale: float | None = None, feature: Any = None):
    """Metric curves against scale (altair), the chosen scale (dashed) and ``current_scale`` marked."""
    from ..chart import Chart
    from .chart import self_explanation_chart as chart

    return Chart(chart(df, current_scale=current_scale, feature=feature).to_dict())
