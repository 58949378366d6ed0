"""The reference for MELBO (unsupervised steering vectors, Mack 2024): plain PyTorch on a raw
transformers GPT-2, no saewidgets code.

A forward pre-hook on block ``source`` adds ``theta`` to the residual at every position; the
residual entering block ``target`` (``hidden_states[target]``) is compared with the unsteered
one, and ``theta`` maximises ``sum_prompts (sum_t ||Z_t(theta) - Z_t(0)||^p)^(1/q)`` on the
sphere of radius R, orthogonal to the vectors learned before: AdamW (betas 0.9/0.98, amsgrad,
no weight decay), the gradient projected on the sphere's tangent and off the earlier vectors,
theta renormalised to R after each step (saewidgets/shared methods.md, section 5). It is the
oracle for ``saewidgets.melbo`` in tests and the baseline of ``benchmarks/bench_melbo.py``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from transformers import PreTrainedModel


def left_pad(rows: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    ids = torch.tensor([[pad] * (width - len(r)) + list(r) for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


def initial_vector(d_model: int, radius: float, seed: int, index: int) -> torch.Tensor:
    """The starting point of vector ``index``: a Gaussian draw from (seed, index), at norm R."""
    import numpy as np

    state = int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint64)[0] >> 1)
    theta = torch.randn(d_model, generator=torch.Generator().manual_seed(state), dtype=torch.float32)
    return theta / theta.norm() * radius


def target_residuals(model: PreTrainedModel, ids: torch.Tensor, mask: torch.Tensor, source: int, target: int,
                     theta: torch.Tensor | None) -> torch.Tensor:
    """hidden_states[target] with ``theta`` added at the input of block ``source`` (None: unsteered)."""
    block = model.transformer.h[source]
    handle = None
    if theta is not None:
        def add(module, args, kwargs):
            if args:
                return (args[0] + theta, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": kwargs["hidden_states"] + theta}

        handle = block.register_forward_pre_hook(add, with_kwargs=True)
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    try:
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, output_hidden_states=True)
    finally:
        if handle is not None:
            handle.remove()
    return out.hidden_states[target]


def objective(z: torch.Tensor, z0: torch.Tensor, mask: torch.Tensor, p: float, q: float) -> torch.Tensor:
    """``sum_rows (sum_t ||z_t - z0_t||^p)^(1/q)`` over real (unpadded) positions."""
    squares = ((z - z0) ** 2).sum(-1)
    per_token = squares if p == 2 else squares.clamp_min(1e-30) ** (p / 2)
    return ((per_token * mask).sum(-1) ** (1.0 / q)).sum()


def melbo_reference(model: PreTrainedModel, prompt_ids: Sequence[Sequence[int]], *, source: int, target: int,
                    radius: float, n_vectors: int, steps: int, p: float = 2.0, q: float | None = None,
                    lr: float = 1e-3, seed: int = 0, pad: int = 0, per_prompt: bool = False
                    ) -> tuple[torch.Tensor, list[float]]:
    """Learn ``n_vectors`` vectors one after another; returns them (n x d) and the final objective of
    each. ``per_prompt``: one forward/backward per prompt per step (gradients summed), the loop the
    batched version is measured against."""
    q = p if q is None else q
    d = model.config.n_embd
    batches = [left_pad([row], pad) for row in prompt_ids] if per_prompt else [left_pad(prompt_ids, pad)]
    with torch.no_grad():
        baselines = [target_residuals(model, ids, mask, source, target, None) for ids, mask in batches]
    learned: list[torch.Tensor] = []
    values: list[float] = []
    for index in range(n_vectors):
        theta = initial_vector(d, radius, seed, index)
        basis = _orthonormal(learned)
        if basis is not None:
            theta = theta - basis.T @ (basis @ theta)
            theta = theta / theta.norm() * radius
        theta.requires_grad_(True)
        optimizer = torch.optim.AdamW([theta], lr=lr, betas=(0.9, 0.98), weight_decay=0.0, amsgrad=True)
        for _ in range(steps):
            optimizer.zero_grad()
            for (ids, mask), z0 in zip(batches, baselines):
                z = target_residuals(model, ids, mask, source, target, theta)
                (-objective(z, z0, mask, p, q)).backward()
            with torch.no_grad():
                g = theta.grad
                g -= (g @ theta) * theta / radius**2
                if basis is not None:
                    g -= basis.T @ (basis @ g)
            optimizer.step()
            with torch.no_grad():
                if basis is not None:
                    theta -= basis.T @ (basis @ theta)
                theta *= radius / theta.norm()
        with torch.no_grad():
            values.append(float(sum(objective(target_residuals(model, ids, mask, source, target, theta), z0, mask, p, q)
                                    for (ids, mask), z0 in zip(batches, baselines))))
        learned.append(theta.detach().clone())
    return torch.stack(learned), values


def _orthonormal(vectors: list[torch.Tensor]) -> torch.Tensor | None:
    if not vectors:
        return None
    q, _ = torch.linalg.qr(torch.stack(vectors).double().T)
    return q.T.float()
