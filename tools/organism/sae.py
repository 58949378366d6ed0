"""Reference TopK SAE in SAELens format (cfg.json + sae_weights.safetensors)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn


class TopKSAE(nn.Module):
    """pre = (x - b_dec) @ W_enc + b_enc; acts = relu(top-k of pre); recon = acts @ W_dec + b_dec."""

    def __init__(self, d_in: int, d_sae: int, k: int, cfg: dict | None = None) -> None:
        super().__init__()
        self.d_in, self.d_sae, self.k = d_in, d_sae, k
        self.cfg = cfg or {}
        self.W_enc = nn.Parameter(torch.empty(d_in, d_sae))
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.W_dec = nn.Parameter(torch.empty(d_sae, d_in))
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        nn.init.kaiming_uniform_(self.W_dec)
        self.normalize_decoder()
        with torch.no_grad():
            self.W_enc.copy_(self.W_dec.T)

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Unit-norm decoder rows (SAELens convention)."""
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8)

    def pre_acts(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.b_dec) @ self.W_enc + self.b_enc

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.pre_acts(x)
        vals, idx = pre.topk(self.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, idx, vals.relu())

    def decode(self, acts: torch.Tensor) -> torch.Tensor:
        return acts @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def save(self, path: str | Path, **cfg_fields: object) -> None:
        """Write cfg.json and sae_weights.safetensors."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        cfg = {"architecture": "topk", "d_in": self.d_in, "d_sae": self.d_sae, "k": self.k,
               "dtype": "float32", "apply_b_dec_to_input": True, "normalize_activations": "none",
               **self.cfg, **cfg_fields}
        (path / "cfg.json").write_text(json.dumps(cfg, indent=2) + "\n")
        tensors = {n: p.detach().float().contiguous() for n, p in self.named_parameters()}
        save_file(tensors, str(path / "sae_weights.safetensors"))

    @classmethod
    def load(cls, path: str | Path) -> "TopKSAE":
        """Load a topk SAE saved by `save`."""
        path = Path(path)
        cfg = json.loads((path / "cfg.json").read_text())
        sae = cls(cfg["d_in"], cfg["d_sae"], cfg["k"], cfg)
        sae.load_state_dict(load_file(str(path / "sae_weights.safetensors")))
        return sae
