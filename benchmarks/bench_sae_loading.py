"""The cost of ``load_sae``'s NaN/inf check on a Gemma Scope 2B-sized SAE.

A random JumpReLU SAE of 16,384 features x 2,304 dimensions (Gemma Scope's width for
Gemma-2-2B, width_16k), float32: W_enc and W_dec are 151 MB each. It is written once as a
Gemma Scope ``params.npz`` and as a SAELens folder (``cfg.json`` + ``sae_weights.safetensors``),
then loaded with ``check_finite=True`` (the default) and ``check_finite=False``, interleaved,
after one warm-up round (files in the page cache: the times are parsing + checks + building,
not disk). The table shows median wall and process-CPU seconds and the ratio against the
unchecked load of the same file. ``check alone`` times the check on the loaded tensors: the
fast path (one float32 sum per tensor), and the exact scan (``~isfinite``) that runs only
when a sum is not finite.

    python benchmarks/bench_sae_loading.py [--repeats 7] [--d-sae 16384] [--d-in 2304] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import saewidgets as sw  # noqa: E402
from saewidgets.core.sae_weights import check_finite  # noqa: E402


def measure(variants: dict[str, Callable[[], object]], repeats: int) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds per call; variants interleaved in each repeat, one warm-up round."""
    wall: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for round_ in range(repeats + 1):
        for name, run in variants.items():
            w0, c0 = time.perf_counter(), time.process_time()
            out = run()
            w1, c1 = time.perf_counter(), time.process_time()
            del out
            if round_:
                wall[name].append(w1 - w0)
                cpu[name].append(c1 - c0)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in variants}


def write_sae(folder: Path, d_in: int, d_sae: int) -> tuple[Path, Path, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    tensors = {
        "W_enc": torch.randn(d_in, d_sae, generator=g) / d_in**0.5,
        "W_dec": torch.randn(d_sae, d_in, generator=g) / d_sae**0.5,
        "b_enc": torch.randn(d_sae, generator=g) * 0.1,
        "b_dec": torch.randn(d_in, generator=g) * 0.1,
        "threshold": torch.rand(d_sae, generator=g) * 0.1,
    }
    npz = folder / "layer_12" / "width_16k" / "average_l0_82" / "params.npz"
    npz.parent.mkdir(parents=True)
    np.savez(npz, **{name: t.numpy() for name, t in tensors.items()})
    saelens = folder / "saelens"
    saelens.mkdir()
    from safetensors.torch import save_file

    save_file(tensors, str(saelens / "sae_weights.safetensors"))
    cfg = {"architecture": "jumprelu", "d_in": d_in, "d_sae": d_sae, "dtype": "float32", "apply_b_dec_to_input": False,
           "normalize_activations": "none", "metadata": {"hook_name": "blocks.12.hook_resid_post", "model_name": "gemma-2-2b"}}
    (saelens / "cfg.json").write_text(json.dumps(cfg))
    return npz, saelens, tensors


def exact_scan(tensors: dict[str, torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--d-sae", type=int, default=16384)
    parser.add_argument("--d-in", type=int, default=2304)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        npz, saelens, tensors = write_sae(Path(tmp), args.d_in, args.d_sae)
        size = sum(t.numel() * t.element_size() for t in tensors.values()) / 1e6
        variants = {
            "npz, check_finite=False": lambda: sw.load_sae(npz, check_finite=False),
            "npz, check_finite=True": lambda: sw.load_sae(npz),
            "safetensors, check_finite=False": lambda: sw.load_sae(saelens, check_finite=False),
            "safetensors, check_finite=True": lambda: sw.load_sae(saelens),
            "check alone: fast path (sums)": lambda: check_finite(tensors, "bench"),
            "check alone: exact scan (isfinite)": lambda: exact_scan(tensors),
        }
        loaded = sw.load_sae(npz)
        assert loaded.d_sae == args.d_sae and torch.equal(loaded.W_dec, tensors["W_dec"])
        results = measure(variants, args.repeats)

    print(f"SAE: JumpReLU {args.d_sae} x {args.d_in}, float32, {size:.0f} MB of weights; "
          f"{args.repeats} repeats (median), torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    header = f"| {'run':<36} | {'wall s':>7} | {'cpu s':>7} | {'wall x unchecked':>16} | {'cpu x unchecked':>15} |"
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    for name, (wall, cpu) in results.items():
        base = results.get(name.split(",")[0] + ", check_finite=False") if "," in name else None
        ratio = (f"{wall / base[0]:.3f}", f"{cpu / base[1]:.3f}") if base else ("", "")
        if name.startswith("check alone"):
            unchecked = results["safetensors, check_finite=False"]
            ratio = (f"{wall / unchecked[0]:.3f}*", f"{cpu / unchecked[1]:.3f}*")
        print(f"| {name:<36} | {wall:7.3f} | {cpu:7.3f} | {ratio[0]:>16} | {ratio[1]:>15} |")
    print("* the check's time as a share of an unchecked safetensors load")


if __name__ == "__main__":
    main()
