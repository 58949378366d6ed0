"""Train a Matryoshka TopK SAE (nested-prefix reconstruction + AuxK for dead latents)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from .sae import TopKSAE


@dataclass
class SAEConfig:
    """Dictionary shape and optimisation settings."""

    d_sae: int = 256
    k: int = 3
    prefixes: tuple[int, ...] = (16, 64, 256)
    steps: int = 3000
    batch: int = 2048
    lr: float = 2e-3
    aux_k: int = 64
    aux_coef: float = 1 / 32
    dead_after: int = 100  # steps without firing
    extra_cfg: dict = field(default_factory=dict)


def _nmse(x: torch.Tensor, recon: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    return ((x - recon) ** 2).sum(-1).mean() / var


def matryoshka_loss(sae: TopKSAE, x: torch.Tensor, acts: torch.Tensor, prefixes: tuple[int, ...],
                    var: torch.Tensor) -> torch.Tensor:
    """Mean normalised MSE of the reconstructions from each dictionary prefix."""
    losses = [_nmse(x, acts[:, :m] @ sae.W_dec[:m] + sae.b_dec, var) for m in prefixes]
    return torch.stack(losses).mean()


def aux_loss(sae: TopKSAE, x: torch.Tensor, recon: torch.Tensor, pre: torch.Tensor,
             dead: torch.Tensor, aux_k: int) -> torch.Tensor:
    """AuxK: dead latents reconstruct the residual error (Gao et al. 2024)."""
    n_dead = int(dead.sum())
    if n_dead == 0:
        return x.new_zeros(())
    err = (x - recon).detach()
    masked = pre.masked_fill(~dead, float("-inf"))
    vals, idx = masked.topk(min(aux_k, n_dead), dim=-1)
    aux = torch.zeros_like(pre).scatter(-1, idx, vals.relu())
    return ((err - aux @ sae.W_dec) ** 2).sum(-1).mean() / (err ** 2).sum(-1).mean().clamp_min(1e-8)


def train_sae(acts: torch.Tensor, cfg: SAEConfig, seed: int, desc: str = "train SAE") -> TopKSAE:
    """Train on activations `acts` (n x d_in)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    sae = TopKSAE(acts.shape[1], cfg.d_sae, cfg.k, dict(cfg.extra_cfg))
    with torch.no_grad():
        sae.b_dec.copy_(acts.median(dim=0).values)
    var = ((acts - acts.mean(0)) ** 2).sum(-1).mean()
    opt = torch.optim.Adam(sae.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
    since_fired = torch.zeros(cfg.d_sae, dtype=torch.long)
    bar = tqdm(range(cfg.steps), desc=desc)
    for step in bar:
        lr_scale = min(1.0, (cfg.steps - step) / (0.2 * cfg.steps))
        for group in opt.param_groups:
            group["lr"] = cfg.lr * lr_scale
        x = acts[torch.randint(0, len(acts), (cfg.batch,), generator=gen)]
        pre = sae.pre_acts(x)
        vals, idx = pre.topk(cfg.k, dim=-1)
        a = torch.zeros_like(pre).scatter(-1, idx, vals.relu())
        recon = sae.decode(a)
        fired = (a > 0).any(0)
        since_fired = torch.where(fired, 0, since_fired + 1)
        loss = matryoshka_loss(sae, x, a, cfg.prefixes, var)
        loss = loss + cfg.aux_coef * aux_loss(sae, x, recon, pre, since_fired > cfg.dead_after, cfg.aux_k)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sae.normalize_decoder()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}", dead=int((since_fired > cfg.dead_after).sum()))
    return sae
