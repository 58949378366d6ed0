"""Train the organism's GPT-2 language model on a token stream."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import GPT2Config, GPT2LMHeadModel

from .stream import sample_windows


@dataclass
class LMConfig:
    """Architecture and optimisation settings."""

    n_layer: int = 4
    n_embd: int = 128
    n_head: int = 4
    n_ctx: int = 128
    steps: int = 1500
    batch: int = 32
    lr: float = 2e-3
    warmup: int = 100
    weight_decay: float = 0.05


def make_model(vocab_size: int, eot_id: int, cfg: LMConfig) -> GPT2LMHeadModel:
    """A fresh GPT-2 with tied embeddings and no dropout."""
    config = GPT2Config(
        vocab_size=vocab_size, n_positions=cfg.n_ctx, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
        n_head=cfg.n_head, n_inner=4 * cfg.n_embd, resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, bos_token_id=eot_id, eos_token_id=eot_id, pad_token_id=eot_id,
        tie_word_embeddings=True,
    )
    return GPT2LMHeadModel(config)


def _lr(step: int, cfg: LMConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))


def train_lm(model: GPT2LMHeadModel, stream: torch.Tensor, cfg: LMConfig, seed: int) -> list[float]:
    """Train in place with AdamW and a cosine schedule; returns the loss per step."""
    gen = torch.Generator().manual_seed(seed)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))
    model.train()
    losses = []
    bar = tqdm(range(cfg.steps), desc="train LM")
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = _lr(step, cfg)
        x = sample_windows(stream, cfg.batch, cfg.n_ctx, gen)
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 20 == 0:
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
    model.eval()
    return losses
