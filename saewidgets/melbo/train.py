"""Learning MELBO vectors (unsupervised steering vectors, Mack 2024) through the engine.

Each vector ``theta`` is added to the residual entering block ``source_layer`` at every
position and maximises ``sum_prompts (sum_t ||Z_t(theta) - Z_t(0)||^p)^(1/q)``, where ``Z`` is the
residual entering block ``target_layer`` and ``t`` runs over each prompt's real (unpadded)
tokens, on the sphere ``||theta|| = R`` and orthogonal to the vectors learned before. Per step:
one batched forward/backward pass (``engine.trace`` with a loss; gradients of ``theta`` only),
the gradient projected on the sphere's tangent (``g -= (g . theta) theta / R^2``) and off the
earlier vectors, an AdamW step (betas 0.9/0.98, amsgrad, no weight decay), then ``theta``
projected off the earlier vectors again and renormalised to R. ``Z(0)`` comes from one plain
pass per batch of prompts.

Starting points are Gaussian draws seeded by ``(seed, index)``: the same call gives the same
vectors, and vector ``i`` does not depend on how many come after it. With ``path=`` a SQLite
store (``MelboStore``) keeps every finished vector and, every ``checkpoint_every`` steps (and on
an interrupt), the vector in progress with its optimiser state: the same call resumes where it
stopped and gives the vectors an uninterrupted run gives.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..core.binding import Binding
from ..core.direction import Direction
from ..core.model import hidden_size, load_model, model_id, model_layout
from ..engine import Edit, Read, Row, trace
from ..engine.batch import tokenize
from .result import MelboVectors, melbo_direction
from .settings import MelboSettings, check_int
from .store import MelboStore, Progress, VectorRecord

STORE_VERSION = 1


@dataclass
class MelboStep:
    """Progress of a run, passed to ``on_step`` after every step."""

    vector: int  # index of the vector being learned
    step: int  # steps done for it
    steps: int
    n_vectors: int
    objective: float  # before this step's update

    @property
    def fraction(self) -> float:
        """Fraction of the whole run done."""
        return (self.vector * self.steps + self.step) / max(1, self.n_vectors * self.steps)


def melbo(
    model: Any,
    prompts: str | Sequence[str],
    *,
    source_layer: int,
    target_layer: int,
    radius: float,
    n_vectors: int,
    steps: int = 300,
    p: float = 2.0,
    q: float | None = None,
    lr: float = 1e-3,
    seed: int = 0,
    prepend_bos: bool = False,
    batch_size: int | None = None,
    path: Any = None,
    checkpoint_every: int = 25,
    on_step: Callable[[MelboStep], None] | None = None,
    progress: bool = True,
    remote: Any = False,
) -> MelboVectors:
    """Learn ``n_vectors`` unsupervised steering vectors, one after another.

    Parameters:
        model: an nnsight model (or anything ``sw.load_model`` takes, or a ``Binding``).
        prompts: the text(s) whose activations the vectors should change (all batched together,
            or in batches of ``batch_size`` prompts whose gradients add up).
        source_layer: the vectors are added to the residual entering this block, at every position
            (the paper's bias on the previous block's output).
        target_layer: the residual entering this block is what they move (``n_layers``: the output
            of the last block).
        radius: R, the norm of every vector.
        n_vectors: how many (at most d_model: they are orthogonal).
        steps, lr: AdamW steps per vector and the learning rate. p, q: the objective's exponents
            (``q=None`` means q = p). seed: the starting points. prepend_bos: start each prompt
            with the BOS token.
        path: a MELBO store (SQLite file; an atlas file works too) to save every finished vector
            and checkpoints into, and to resume from: the same call (same model, prompts and
            settings; ``n_vectors`` may grow) continues where it stopped.
        checkpoint_every: steps between checkpoints of the vector in progress (with ``path``).
        on_step: called with a ``MelboStep`` after every step; an exception it raises stops the
            run (saving a checkpoint first, with ``path``) and propagates.
        progress: a tqdm bar over the steps. remote: passed to nnsight (``"local"`` tests the
            serialisation path).

    Returns ``MelboVectors``: a list-like of ``sw.Direction`` (``.vector`` of norm R, layer
    ``source_layer``, provenance with the settings) and their ``objectives``.
    """
    nn_model = model.model if isinstance(model, Binding) else load_model(model)
    layout = model_layout(nn_model)
    n_layers = len(layout.blocks_of(nn_model._module))
    d_model = hidden_size(nn_model._module, layout)
    settings = MelboSettings.checked(n_layers, source_layer=source_layer, target_layer=target_layer, radius=radius,
                                     steps=steps, p=p, q=q, lr=lr, seed=seed, prepend_bos=prepend_bos)
    texts = check_prompts(prompts)
    n_vectors = check_int(n_vectors, "n_vectors", 1, d_model, f" (vectors are orthogonal: at most d_model={d_model})")
    batch_size = len(texts) if batch_size is None else check_int(batch_size, "batch_size", 1, 1 << 20)
    checkpoint_every = check_int(checkpoint_every, "checkpoint_every", 1, 1 << 30)
    if on_step is not None and not callable(on_step):
        raise ValueError(f"on_step must be a function taking a MelboStep, got {type(on_step).__name__}")
    prompt_ids = tokenize(nn_model.tokenizer, texts, settings.prepend_bos)

    store = run = None
    key = run_key(fingerprint(nn_model, layout), prompt_ids, settings)
    finished: list[VectorRecord] = []
    resume: Progress | None = None
    name = model_id(nn_model)
    if path is not None:
        store = MelboStore(path)
        run = store.run(key, model=name, d_model=d_model, settings=settings.to_dict(), prompts=texts)
        finished = store.vectors(run)
        resume = store.progress(run)
    trainer = _Trainer(nn_model, prompt_ids, settings, d_model, batch_size, remote)
    learned = [torch.from_numpy(r.vector.copy()) for r in finished[:n_vectors]]
    records = list(finished[:n_vectors])

    from tqdm.auto import tqdm

    done_steps = len(records) * settings.steps + (resume.step if resume and resume.index == len(records) else 0)
    with tqdm(total=n_vectors * settings.steps, initial=min(done_steps, n_vectors * settings.steps), unit="step",
              desc="MELBO", disable=not progress or len(records) >= n_vectors) as bar:
        for index in range(len(records), n_vectors):
            state = resume if resume is not None and resume.index == index else None

            def report(step: int, value: float, index: int = index) -> None:
                bar.update(1)
                bar.set_postfix(vector=index, objective=f"{value:.4g}", refresh=False)
                if on_step is not None:
                    on_step(MelboStep(index, step, settings.steps, n_vectors, value))

            def checkpoint(snapshot: Progress) -> None:
                if store is not None:
                    store.save_progress(run, snapshot)  # type: ignore[arg-type]

            record = trainer.learn(index, learned, state, report, checkpoint, checkpoint_every)
            if store is not None:
                store.add_vector(run, record)  # type: ignore[arg-type]
            learned.append(torch.from_numpy(record.vector.copy()))
            records.append(record)
    directions = [melbo_direction(torch.from_numpy(r.vector.copy()), r.index, settings, r.objective, run=run, name=r.name)
                  for r in records]
    return MelboVectors(directions, [r.objective for r in records], settings, texts, [r.history for r in records],
                        [r.seconds for r in records], name, None if store is None else str(store.path), run, key)


def check_prompts(prompts: Any) -> list[str]:
    texts = [prompts] if isinstance(prompts, str) else list(prompts) if isinstance(prompts, (list, tuple)) else None
    if texts is None:
        raise ValueError(f"prompts must be a string or a list of strings, got {type(prompts).__name__}")
    if not texts:
        raise ValueError("the prompt list is empty: give at least one prompt")
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"prompt {i} must be non-empty text, got {text!r}")
    return texts


def initial_vector(d_model: int, radius: float, seed: int, index: int) -> torch.Tensor:
    """Vector ``index``'s starting point: a Gaussian draw seeded by ``(seed, index)``, at norm R."""
    state = int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint64)[0] >> 1)
    theta = torch.randn(d_model, generator=torch.Generator().manual_seed(state), dtype=torch.float32)
    return theta / theta.norm() * radius


def fingerprint(model: Any, layout: Any) -> str:
    from ..self_explanation.cache import model_fingerprint

    return model_fingerprint(model, layout)


def run_key(model: str, prompts: Sequence[Any], settings: MelboSettings, *, saved: bool = False) -> str:
    """The store key of a run: a hash of the model (fingerprint), the prompts and the settings."""
    data = {"version": STORE_VERSION, "model": model, "prompts": [list(p) if not isinstance(p, str) else p for p in prompts],
            "settings": settings.to_dict(), "saved": saved}
    if saved:
        data["at"] = time.time()  # a saved copy is its own run
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _distances(h: torch.Tensor, mask: torch.Tensor, baseline: torch.Tensor, p: float) -> torch.Tensor:
    """Per row: ``sum_t ||h_t - baseline_t||^p`` over real tokens (runs inside the trace; in float32
    whatever the model's dtype)."""
    squares = ((h.float() - baseline.to(h.device, torch.float32)) ** 2).sum(-1)
    per_token = squares if p == 2 else squares.clamp_min(1e-30) ** (p / 2)
    return (per_token * mask.to(per_token.dtype)).sum(-1)


def _total(per_row: torch.Tensor, q: float) -> torch.Tensor:
    return (per_row.clamp_min(1e-30) ** (1.0 / q)).sum()


class _Trainer:
    """The optimisation of one run: batches of prompt ids, their Z(0), one vector at a time."""

    def __init__(self, model: Any, prompt_ids: list[list[int]], settings: MelboSettings, d_model: int,
                 batch_size: int, remote: Any) -> None:
        self.model, self.settings, self.d_model, self.remote = model, settings, d_model, remote
        self.batches = [prompt_ids[i:i + batch_size] for i in range(0, len(prompt_ids), batch_size)]
        self.baselines = [trace(model, [Row(ids) for ids in batch], [Read("z", settings.target_layer, positions="all")],
                                remote=remote).reads["z"].detach() for batch in self.batches]

    def value_and_grad(self, theta: torch.Tensor) -> tuple[float, torch.Tensor]:
        """The objective at ``theta`` and its gradient (summed over the batches)."""
        s = self.settings
        value, grad = 0.0, torch.zeros_like(theta)
        for batch, z0 in zip(self.batches, self.baselines):
            read = Read("z", s.target_layer, positions="all", fn=lambda h, mask, z0=z0: _distances(h, mask, z0, s.p))  # type: ignore[misc]
            run = trace(self.model, [Row(ids, (Edit(s.source_layer, theta),)) for ids in batch], [read],
                        loss=lambda reads: -_total(reads["z"], s.q), wrt=[theta], remote=self.remote)
            assert run.loss is not None and run.grads[0] is not None  # a loss trace returns both
            value -= float(run.loss)
            grad -= run.grads[0].to(grad)
        return value, grad

    def value(self, theta: torch.Tensor) -> float:
        s = self.settings
        total = 0.0
        with torch.no_grad():
            for batch, z0 in zip(self.batches, self.baselines):
                read = Read("z", s.target_layer, positions="all", fn=lambda h, mask, z0=z0: _distances(h, mask, z0, s.p))  # type: ignore[misc]
                run = trace(self.model, [Row(ids, (Edit(s.source_layer, theta),)) for ids in batch], [read],
                            remote=self.remote)
                total += float(_total(run.reads["z"].float(), s.q))
        return total

    def learn(self, index: int, learned: list[torch.Tensor], state: Progress | None,
              report: Callable[[int, float], None], checkpoint: Callable[[Progress], None],
              checkpoint_every: int) -> VectorRecord:
        s = self.settings
        radius = s.radius
        basis = orthonormal_basis(learned)
        if state is None:
            theta = initial_vector(self.d_model, radius, s.seed, index)
            theta = _on_sphere(theta, basis, radius)
        else:
            theta = torch.from_numpy(state.theta.copy())
        theta.requires_grad_(True)
        optimizer = torch.optim.AdamW([theta], lr=s.lr, betas=s.betas, weight_decay=0.0, amsgrad=True)
        start, history, seconds = 0, [], 0.0
        if state is not None:
            start, history, seconds = state.step, list(state.history), state.seconds
            if start > 0:
                optimizer.state[theta] = {
                    "step": torch.tensor(float(start)),
                    "exp_avg": torch.from_numpy(state.exp_avg.copy()),
                    "exp_avg_sq": torch.from_numpy(state.exp_avg_sq.copy()),
                    "max_exp_avg_sq": torch.from_numpy(state.max_exp_avg_sq.copy()),
                }
        began = time.perf_counter()
        snapshot = self._snapshot(index, start, theta, optimizer, history, seconds)
        try:
            for step in range(start, s.steps):
                value, grad = self.value_and_grad(theta)
                with torch.no_grad():
                    g = -grad  # AdamW minimises: the negative objective
                    g -= (g @ theta) * theta / radius**2  # tangent to the sphere
                    if basis is not None:
                        g -= basis.T @ (basis @ g)  # and orthogonal to the earlier vectors
                    theta.grad = g
                optimizer.step()
                with torch.no_grad():
                    theta.copy_(_on_sphere(theta.detach(), basis, radius))
                history.append(value)
                snapshot = self._snapshot(index, step + 1, theta, optimizer, history,
                                          seconds + time.perf_counter() - began)
                if (step + 1) % checkpoint_every == 0 and step + 1 < s.steps:
                    checkpoint(snapshot)
                report(step + 1, value)
        except BaseException:
            checkpoint(snapshot)  # the last complete step: an interrupted run resumes from it
            raise
        final = theta.detach().clone()
        objective = self.value(final)
        return VectorRecord(index, final.numpy().astype(np.float32), objective, history,
                            seconds + time.perf_counter() - began)

    @staticmethod
    def _snapshot(index: int, step: int, theta: torch.Tensor, optimizer: torch.optim.Optimizer, history: list[float],
                  seconds: float) -> Progress:
        state = optimizer.state.get(theta, {})
        zeros = np.zeros(theta.shape[0], dtype=np.float32)

        def array(name: str) -> np.ndarray:
            value = state.get(name)
            return zeros if value is None else value.detach().cpu().numpy().astype(np.float32).copy()

        return Progress(index, step, theta.detach().cpu().numpy().astype(np.float32).copy(), array("exp_avg"),
                        array("exp_avg_sq"), array("max_exp_avg_sq"), list(history), float(seconds))


def orthonormal_basis(vectors: Sequence[torch.Tensor]) -> torch.Tensor | None:
    """Rows: an orthonormal basis of the span of ``vectors`` (None for none)."""
    if not vectors:
        return None
    q, _ = torch.linalg.qr(torch.stack([v.double() for v in vectors]).T)
    return q.T.float()


def _on_sphere(theta: torch.Tensor, basis: torch.Tensor | None, radius: float) -> torch.Tensor:
    if basis is not None:
        theta = theta - basis.T @ (basis @ theta)
    norm = theta.norm()
    if not torch.isfinite(norm) or norm <= 0:
        raise ValueError("a MELBO vector became zero or non-finite: lower lr, or check the model")
    return theta * (radius / norm)


def objective(model: Any, prompts: str | Sequence[str], vectors: Any, settings: MelboSettings, *,
              batch_size: int | None = None, remote: Any = False) -> list[float]:
    """The MELBO objective of each of ``vectors`` (Directions or d_model tensors) for ``prompts``
    under ``settings`` (layers, p, q, prepend_bos): how far each moves the target layer."""
    nn_model = model.model if isinstance(model, Binding) else load_model(model)
    layout = model_layout(nn_model)
    d_model = hidden_size(nn_model._module, layout)
    texts = check_prompts(prompts)
    rows = _vector_rows(vectors, d_model)
    ids = tokenize(nn_model.tokenizer, texts, settings.prepend_bos)
    size = len(ids) if batch_size is None else check_int(batch_size, "batch_size", 1, 1 << 20)
    trainer = _Trainer(nn_model, ids, settings, d_model, size, remote)
    return [trainer.value(v) for v in rows]


def _vector_rows(vectors: Any, d_model: int) -> list[torch.Tensor]:
    if isinstance(vectors, Direction):
        vectors = [vectors]
    if isinstance(vectors, torch.Tensor):
        vectors = [vectors] if vectors.ndim == 1 else list(vectors)
    out = []
    for v in vectors:
        tensor = v.check_width(d_model).vector if isinstance(v, Direction) else Direction(v).check_width(d_model).vector
        out.append(tensor)
    return out
