"""MELBO speed: time per vector, prompts batched vs one prompt at a time, and against plain PyTorch.

For each model, one MELBO vector is learned on 8 neutral prompts (the organism's steering prompts)
four ways, all the same algorithm (AdamW, tangent projection, renormalisation) from the same
starting point:

- ``sw.melbo``, batched: one engine trace (forward + backward) per step over the 8 prompts;
- ``sw.melbo(batch_size=1)``: the one-prompt-at-a-time loop, 8 traces per step, gradients summed;
- plain PyTorch (``tools/references/melbo_hooks.py``: a forward pre-hook + autograd on a model
  nnsight never wrapped), batched and one prompt at a time.

The script checks that the four give the same vector (to 1e-3), then times ``--steps`` steps of
each (interleaved, median of ``--repeats``) and reports seconds per step and per vector of 300
steps (per-step time x 300), with ratios against the batched ``sw.melbo`` run, in wall and
process-CPU time. Models: the organism (4 blocks x 128, source block 1, target block 3, R = 8)
and a GPT-2-small-shaped random model (transformers ``GPT2Config()``: 12 x 768, vocab 50257, the
tiny test tokenizer; source block 4, target block 8, R = 8).

    python benchmarks/bench_melbo.py [--steps 20] [--repeats 3] [--threads 1] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import sys
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import saewidgets as sw  # noqa: E402
from timing import measure  # noqa: E402  (benchmarks/timing.py)
from tools.organism.evaluate import STEER_PROMPTS  # noqa: E402
from tools.references.melbo_hooks import melbo_reference  # noqa: E402

PROMPTS = STEER_PROMPTS[:8]
PER_VECTOR = 300


def models(device: str) -> list[tuple[str, object, object, dict]]:
    import transformers as tf

    from saewidgets.model_organism import organism_raw
    from tiny_models import tiny_tokenizer

    raw, tok = organism_raw(device)
    organism = sw.load_model(copy.deepcopy(raw), tokenizer=tok)
    torch.manual_seed(0)
    hf = tf.GPT2LMHeadModel(tf.GPT2Config()).eval().to(device)
    gpt2 = sw.load_model(copy.deepcopy(hf), tokenizer=tiny_tokenizer())
    return [
        ("organism (4 x 128)", organism, raw, dict(source_layer=1, target_layer=3, radius=8.0, prepend_bos=True)),
        ("GPT-2-small-shaped (12 x 768)", gpt2, hf, dict(source_layer=4, target_layer=8, radius=8.0, prepend_bos=False)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="steps timed per run (default 20)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # random weights otherwise hit slow denormal floats on x86
    print(f"MELBO, one vector on {len(PROMPTS)} prompts, {args.steps} steps timed (x {PER_VECTOR // args.steps} for "
          f"{PER_VECTOR}), lr 1e-2, {args.threads} threads, device {args.device}, median of {args.repeats}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'model':31} {'run':34} {'s/step':>8} {'s/vector':>9} {'ratio':>6} {'cpu ratio':>9}")
    for name, model, raw, settings in models(args.device):
        tok = model.tokenizer
        bos = [tok.bos_token_id] if settings["prepend_bos"] else []
        ids = [bos + tok(p)["input_ids"] for p in PROMPTS]
        kw = dict(n_vectors=1, lr=1e-2, progress=False, **settings)

        def ours(batch_size: int | None, steps: int = args.steps) -> Callable[[], object]:
            return lambda: sw.melbo(model, PROMPTS, steps=steps, batch_size=batch_size, **kw)  # noqa: B023 (called at once)

        def plain(per_prompt: bool, steps: int = args.steps) -> Callable[[], object]:
            return lambda: melbo_reference(raw, ids, source=settings["source_layer"],  # noqa: B023 (called at once)
                                           target=settings["target_layer"], radius=settings["radius"],  # noqa: B023
                                           n_vectors=1, steps=steps, lr=1e-2, pad=tok.pad_token_id or 0,  # noqa: B023
                                           per_prompt=per_prompt)

        check = ours(None, 3)().vectors[0]
        for other in (ours(1, 3)().vectors[0], plain(False, 3)()[0][0], plain(True, 3)()[0][0]):
            assert (other.cpu() - check).abs().max() < 1e-3, "the four runs learn different vectors"
        variants = {
            "sw.melbo, 8 prompts batched": ours(None),
            "sw.melbo, one prompt at a time": ours(1),
            "plain PyTorch, batched": plain(False),
            "plain PyTorch, one prompt at a time": plain(True),
        }
        t = measure(variants, args.repeats, args.device)
        base = t["sw.melbo, 8 prompts batched"]
        for run, value in t.items():
            per_step = value["wall"] / args.steps
            print(f"{name:31} {run:34} {per_step:8.4f} {per_step * PER_VECTOR:9.2f} {value['wall'] / base['wall']:6.2f} "
                  f"{value['cpu'] / base['cpu']:9.2f}")


if __name__ == "__main__":
    main()
