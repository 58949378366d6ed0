"""SAE task features: a task vector written as a sparse set of SAE features, three ways.

>>> tf = sw.task_features(model, sae, prompts, method="cleanup")   # or "encode", "ito"
>>> tf.features, tf.l0, tf.nll, tf.accuracy    # {feature: weight}, strongest first; measured zero-shot
>>> tf.direction                               # sw.Direction: sum(w * W_dec[f]) + b_dec, at the SAE's layer

- ``"encode"``: the SAE's encoder on the task vector (``sw.decompose``; dense, off-distribution);
- ``"ito"``: gradient pursuit to ``l0`` features (Smith; ``sw.decompose``);
- ``"cleanup"`` (Kharlapenko): optimise pre-activations theta, initialised at the encoder's
  pre-activations of the task vector; the reconstruction ``act(theta) @ W_dec + b_dec`` is written
  at the last separator of zero-shot prompts and the loss is the NLL of their first answer tokens
  + ``lam * ||act(theta)||_1``; Adam, stopped when L0 has not improved for ``patience`` steps.
  ``act`` is ReLU, except for JumpReLU SAEs (their threshold is kept). For a **TopK** SAE the
  encoder would cap L0 at k, so cleanup uses the ReLU of the pre-activations instead: every
  positive pre-activation starts active and the L1 term decides how many stay. Gated SAEs start
  from their encoder's activations (ReLU as well).

Every model run goes through the engine; a cleanup step is one batched trace over the prompts
whose loss is backpropagated inside the trace to the inserted vector (so it runs remotely), and
the chain rule to theta (and the L1 term) is taken here.
"""

from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import torch

from ..core.binding import bind
from ..core.direction import Direction
from ..decomposition import SparseCode, decompose
from ..engine import Edit, Row, trace
from .evaluate import TaskEvaluation, evaluate_task_vector
from .prompts import ICLPrompt, as_prompts, encode_all, with_answers
from .runs import Insert, check_batch_size, check_insert, chunks, nll_loss_read, progress_bar
from .vector import POSITIONS, check_position, resolve_bos, task_vector

METHODS = ("encode", "ito", "cleanup")


@dataclass(frozen=True)
class CleanupSettings:
    """Gradient cleanup's knobs (methods.md section 4 gives the published ranges)."""

    lam: float = 0.03  # L1 weight, 0.02-0.05
    lr: float = 1e-2  # Adam
    steps: int = 1000  # at most (1000-2000)
    patience: int = 100  # stop when L0 has not improved for this many steps (50-200)
    answer_tokens: int = 3  # the NLL counts each answer's first tokens (2-3)

    def __post_init__(self) -> None:
        for name, lo in (("lam", 0.0), ("lr", 0.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < lo \
                    or (name == "lr" and value == 0):
                raise ValueError(f"{name} must be a finite number {'> 0' if name == 'lr' else '>= 0'}, got {value!r}")
        for name in ("steps", "patience", "answer_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")


@dataclass
class TaskFeatures(SparseCode):
    """A task vector's sparse code in an SAE's features, measured on zero-shot prompts.

    Beyond ``SparseCode`` (``features``, ``l0``, ``reconstruction``, ``direction``, ...):
    ``nll`` and ``accuracy`` of the zero-shot prompts with the reconstruction inserted,
    ``evaluation`` (per prompt), ``vector`` (the task vector), ``layer``, ``insert``, and for
    cleanup ``history`` (one row per step: step, nll, l1, loss, l0) and ``steps``, ``seconds``.
    """

    accuracy: float | None = None
    layer: int | None = None
    insert: str = "replace"
    vector: Direction | None = field(default=None, repr=False)
    evaluation: TaskEvaluation | None = field(default=None, repr=False)
    history: Any = field(default=None, repr=False)
    steps: int = 0
    seconds: float = 0.0
    prepend_bos: bool | None = None

    def _made(self) -> dict:
        return {"layer": self.layer, "insert": self.insert, "prepend_bos": self.prepend_bos}

    @property
    def direction(self) -> Direction:
        out = super().direction
        out.provenance = {**out.provenance, **self._made()}
        return out

    def subset(self, features: Iterable[int]) -> Direction:
        """The direction of some of the features (with their weights; b_dec as the full code has it)."""
        keep = [int(f) for f in features]
        unknown = [f for f in keep if f not in self.features]
        if unknown:
            raise ValueError(f"features {unknown} are not in this code; it has {list(self.features)}")
        out = Direction(name="zero")
        for f in keep:
            out = out + Direction.feature(self.sae, f, self.features[f])
        if self.include_bias:
            out = out + Direction(self.sae.b_dec.detach(), name="b_dec")
        out.name = f"{len(keep)} of {self.l0} {self.method} features"
        out.provenance = {"method": f"{self.method} subset", "features": keep, **self._made()}
        out.layer, out.site = self.layer, "resid_pre"
        return out

    def chart(self, labels: Any = None, roles: Any = None) -> Any:
        """A bar per feature (its weight), as an ``sw.Chart``. ``labels``: ``{feature: text}``;
        ``roles``: ``saewidgets.tasks.feature_roles(...)`` (a DataFrame) or ``{feature: role}``."""
        from .charts import FEATURES, chart, feature_rows, features_spec

        if roles is not None and hasattr(roles, "columns"):
            roles = dict(zip(roles["feature"], roles["role"]))
        return chart(features_spec(), FEATURES, feature_rows(self.features, labels, roles))


def check_method(method: Any) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {METHODS}")
    return method


def activation_fn(sae: Any):
    """``act(theta)`` for cleanup (see the module doc: ReLU; JumpReLU keeps its threshold)."""
    if sae.architecture == "jumprelu":
        threshold = sae.threshold.detach()
        return lambda theta: torch.relu(theta) * (theta > threshold.to(theta.device))
    return torch.relu


def activation_name(sae: Any) -> str:
    """What ``activation_fn`` applies, in words (a TopK SAE's cleanup is not capped at k)."""
    if sae.architecture == "jumprelu":
        return "JumpReLU (the SAE's thresholds)"
    if sae.architecture == "topk":
        return f"ReLU of the pre-activations (not the TopK encoder, whose L0 is capped at k={sae.k})"
    return "ReLU"


def initial_theta(sae: Any, vector: torch.Tensor) -> torch.Tensor:
    """Cleanup's start: the encoder's pre-activations of the task vector (gated SAEs: their
    activations where the gate is open, the gate's pre-activation (<= 0) elsewhere)."""
    x = vector.to(sae.W_enc.device, sae.W_enc.dtype)
    with torch.no_grad():
        pre = sae.encode_pre(x)
        if sae.architecture == "gated":
            acts = sae.encode(x)
            pre = torch.where(acts > 0, acts, pre.clamp_max(0))
    return pre.detach().float()


def check_l0(l0: Any) -> int:
    """ITO's target L0: a whole number >= 1 (capped at the SAE's width where it is used)."""
    if isinstance(l0, bool) or not isinstance(l0, numbers.Integral) or l0 < 1:
        raise ValueError(f"l0 (ITO's target number of features) must be a whole number >= 1, got {l0!r}")
    return int(l0)


def _check_sae(sae: Any) -> None:
    if getattr(sae, "normalize_activations", "none") != "none":
        raise ValueError(f"gradient cleanup needs an SAE that reads raw residuals; this one normalises its input "
                         f"({sae.normalize_activations!r}), so its decoder output is not a residual")


def task_features(model: Any, sae: Any, prompts: Any, *, layer: int | None = None, method: str = "cleanup",
                  vector: Any = None, eval_prompts: Any = None, position: str = "separator", insert: str = "replace",
                  l0: int = 40, lam: float = 0.03, lr: float = 1e-2, steps: int = 1000, patience: int = 100,
                  answer_tokens: int = 3, prepend_bos: bool | None = None, batch_size: int = 64,
                  progress: bool = True, remote: Any = False, on_step: Callable[[dict], None] | None = None,
                  ) -> TaskFeatures:
    """The task vector of ``prompts`` at the SAE's layer as a sparse set of SAE features.

    ``prompts``: ``sw.icl_prompts(pairs, shots=..., n=...)`` (with answers: cleanup trains on
    their queries asked zero-shot, ``x ->``). ``vector``: a task vector to decompose instead of
    extracting one (``position`` says how it is extracted). ``eval_prompts``: zero-shot prompts the
    result is measured on (default: the training prompts). ``l0``: ITO's target. ``lam``, ``lr``,
    ``steps``, ``patience``, ``answer_tokens``: cleanup's settings (``CleanupSettings``).
    ``insert``: how the reconstruction enters the model ("replace" the residual at the last
    separator, or "add" to it). ``progress``: a tqdm bar over cleanup's steps; ``on_step`` gets each
    step's record (a widget's progress).
    """
    binding = bind(model, sae)
    model, sae = binding.model, binding.sae
    method = check_method(method)
    insert = check_insert(insert)
    check_position(position)
    batch_size = check_batch_size(batch_size)
    if layer is not None and layer != binding.layer:
        raise ValueError(f"the SAE reads resid_pre[{binding.layer}], not layer {layer}: SAE features live at the "
                         f"SAE's layer (leave layer= out, or bind an SAE of layer {layer})")
    if binding.site != "resid_pre":
        raise ValueError(f"task vectors are taken at resid_pre; this SAE reads {binding.site}")
    settings = CleanupSettings(lam, lr, steps, patience, answer_tokens)
    l0 = check_l0(l0)
    if method == "cleanup":
        _check_sae(sae)
    items = as_prompts(prompts)
    train = [p.zero_shot() for p in with_answers([p for p in items], "prompts")] if method == "cleanup" else None
    evaluate_on = with_answers(as_prompts(eval_prompts), "eval_prompts") if eval_prompts is not None else None
    if evaluate_on is None:
        evaluate_on = [p.zero_shot() for p in with_answers(items, "prompts")]
    bos = resolve_bos(prepend_bos, sae, vector)
    if vector is None:
        vector = task_vector(model, items, binding.layer, position=position, prepend_bos=bos, remote=remote)
    elif not isinstance(vector, Direction):
        vector = Direction(vector, name="task vector", layer=binding.layer, site="resid_pre")
    target = vector.check_width(binding.d_model, "the SAE's input").vector

    started = time.perf_counter()
    history, n_steps = None, 0
    if method in ("encode", "ito"):
        code = decompose(sae, target, method, l0=min(l0, sae.d_sae) if method == "ito" else 1, include_bias=True)
        features, recon = code.features, code.reconstruction
    else:
        assert train is not None
        features, recon, history, n_steps = cleanup(model, sae, target, train, settings, insert=insert, bos=bos,
                                                    batch_size=batch_size, progress=progress, remote=remote,
                                                    on_step=on_step)
    seconds = time.perf_counter() - started
    extra = {"activation": activation_name(sae)} if method == "cleanup" else {}
    result = TaskFeatures(features, method, recon, target, sae, True, extra=extra, layer=binding.layer, insert=insert,
                          vector=vector, history=history, steps=n_steps, seconds=seconds, prepend_bos=bos)
    evaluation = evaluate_task_vector(model, result.direction, evaluate_on, layer=binding.layer, insert=insert,
                                      answer_tokens=answer_tokens, prepend_bos=bos, batch_size=batch_size,
                                      remote=remote)
    result.nll, result.accuracy, result.evaluation = evaluation.nll, evaluation.accuracy, evaluation
    return result


def cleanup(model: Any, sae: Any, target: torch.Tensor, prompts: Sequence[ICLPrompt], settings: CleanupSettings, *,
            insert: Insert = "replace", bos: bool = False, batch_size: int = 64, progress: bool = True,
            remote: Any = False, on_step: Callable[[dict], None] | None = None,
            ) -> tuple[dict[int, float], torch.Tensor, Any, int]:
    """Gradient cleanup of ``target`` (see the module doc). Returns the features {f: act},
    the reconstruction, the history (a DataFrame) and the number of steps taken. ``on_step``
    gets each step's record (step, nll, l1, loss, l0) and may raise to stop the run."""
    import pandas as pd

    layer = sae.hook.layer
    encoded = encode_all(model.tokenizer, prompts, bos)
    W_dec, b_dec = sae.W_dec.detach().float(), sae.b_dec.detach().float()
    act = activation_fn(sae)
    theta = initial_theta(sae, target).requires_grad_(True)
    optimizer = torch.optim.Adam([theta], lr=settings.lr)
    parts = [(part, *nll_loss_read([encoded[i] for i in part], settings.answer_tokens))
             for part in chunks(len(encoded), batch_size)]
    rows_of = [[[*encoded[i].ids, *encoded[i].answer_ids[: settings.answer_tokens]] for i in part]
               for part, _, _ in parts]
    separator_of = [[encoded[i].separators[-1] for i in part] for part, _, _ in parts]
    records, best, since = [], math.inf, 0
    bar = progress_bar(settings.steps, "cleanup", progress, "step")
    try:
        for step in range(settings.steps):
            acts = act(theta)
            recon = acts @ W_dec.to(theta.device) + b_dec.to(theta.device)
            inserted = recon.detach().cpu().requires_grad_(True)
            nll, grad = 0.0, torch.zeros_like(inserted)
            for (part, read, loss), ids, seps in zip(parts, rows_of, separator_of):
                rows = [Row(r, (Edit(layer, inserted, op=insert, positions=(s,)),)) for r, s in zip(ids, seps)]
                out = trace(model, rows, [read], loss=loss, wrt=[inserted], remote=remote)
                share = len(part) / len(encoded)
                assert out.loss is not None and out.grads[0] is not None
                nll += out.loss * share
                grad += out.grads[0] * share
            l1 = acts.sum()
            l1_value, l0 = float(l1.detach()), int((acts.detach() > 0).sum())
            records.append({"step": step, "nll": nll, "l1": l1_value, "loss": nll + settings.lam * l1_value, "l0": l0})
            if on_step is not None:
                on_step({**records[-1], "steps": settings.steps})
            if l0 < best:
                best, since = l0, 0
            else:
                since += 1
            if since >= settings.patience or l0 == 0:
                break
            optimizer.zero_grad()
            objective = (recon * grad.to(recon.device)).sum() + settings.lam * l1
            objective.backward()
            optimizer.step()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(nll=f"{nll:.3f}", l0=l0)
    finally:
        if bar is not None:
            bar.close()
    with torch.no_grad():
        acts = act(theta).detach().float().cpu()
    index = acts.nonzero().flatten()
    order = torch.argsort(acts[index], descending=True)
    features = {int(index[i]): float(acts[index[i]]) for i in order}
    recon = acts @ W_dec.cpu() + b_dec.cpu()
    return features, recon, pd.DataFrame(records), len(records)


__all__ = ["METHODS", "POSITIONS", "CleanupSettings", "TaskFeatures", "activation_fn", "cleanup", "initial_theta",
           "task_features"]
