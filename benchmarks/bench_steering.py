"""Steering speed: ``sw.steer`` against plain PyTorch hooks + HF generate, and batched vs sequential.

Model: a GPT-2-small-shaped random transformer (transformers GPT2Config defaults: 12 layers
x 768, vocab 50257), the tiny test BPE tokenizer (its ids fit the vocabulary), a random SAE
at resid_pre of layer 6, greedy decoding of 32 new tokens (EOS does not stop generation).
Every row is measured in the same run, the variants interleaved in each repeat; the table
shows median wall times and their ratio against the baseline named in each row, and the
same for process CPU time (less sensitive to other processes on a shared machine). On a busy 2-core
machine, 2 torch threads can stall on each other (ten times slower, erratic): use
``--threads 1`` there. The hook baseline runs on a copy of the model that nnsight never wrapped.

(a) steered generation through our path vs a torch forward pre-hook + ``model.generate``:
    - ``sw.steer`` (baseline and steered rows, one batch of 2) vs the hook on the same 2-row batch;
    - our generation helper, one steered row, vs the hook on one row;
    - a bare nnsight loop (``h[:] += v`` each step, no log-probs) vs the hook on one row,
      which is nnsight's own share of the overhead;
(b) baseline and steered side by side in one batched ``sw.steer`` call vs two sequential
    one-row calls (baseline, then steered) of our generation helper.

    python benchmarks/bench_steering.py [--quick] [--threads 2] [--device cpu|cuda]
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
from saewidgets.engine import Decoding, Edit, Row, generate  # noqa: E402
from tools.references.steering_hooks import hooked_generate  # noqa: E402
from tiny_models import random_sae, tiny_tokenizer  # noqa: E402

PROMPT = "The quick brown fox jumps over the lazy dog."
LAYER, FEATURE, SCALE = 6, 3, 8.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 repeats of 8 new tokens")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # random weights otherwise hit slow denormal floats on x86
    repeats = args.repeats or (2 if args.quick else 7)
    n = 8 if args.quick else 32

    import transformers as tf

    torch.manual_seed(0)
    hf = tf.GPT2LMHeadModel(tf.GPT2Config()).eval().to(args.device)
    plain = copy.deepcopy(hf)  # the hook baseline runs on a copy nnsight never wrapped
    model = sw.load_model(hf, tokenizer=tiny_tokenizer())
    binding = sw.bind(model, random_sae(768, 1024, layer=LAYER))
    vector = (SCALE * binding.sae.W_dec[FEATURE]).detach().to(args.device)
    tok = model.tokenizer
    block = binding.layout.blocks_of(plain)[LAYER]

    def hooked(rows: int) -> Callable[[], object]:
        """Plain PyTorch (tools/references/steering_hooks.py): a forward pre-hook adds the per-row
        vector; greedy HF generate. The last row is the steered one."""
        enc = tok([PROMPT] * rows, return_tensors="pt", padding=True).to(args.device)
        delta = torch.zeros(rows, 768, device=args.device)
        delta[-1] = vector

        def run() -> object:
            return hooked_generate(plain, block, enc["input_ids"], enc["attention_mask"], delta, n,
                                   pad_token_id=tok.pad_token_id).ids
        return run

    def ours_steer() -> object:
        return sw.steer(binding, prompt=PROMPT, features={FEATURE: SCALE}, max_new_tokens=n, progress=False)

    def ours_row(steered: bool) -> Callable[[], object]:
        edits = (Edit(LAYER, vector.cpu()),) if steered else ()
        return lambda: generate(model, [Row(PROMPT, edits)], Decoding(max_new_tokens=n, prepend_bos=False))

    held = sw.steer(binding, prompt=PROMPT, features={FEATURE: SCALE}, max_new_tokens=n, progress=False)

    def slider_move() -> object:  # the explorer holds the baseline: only the steered row runs
        return sw.steer(binding, prompt=PROMPT, features={FEATURE: SCALE * 1.5}, max_new_tokens=n, progress=False,
                        baseline=held)

    envoy = binding.layout.blocks_of(model)[LAYER]
    enc1 = tok([PROMPT], return_tensors="pt").to(args.device)

    def bare_nnsight() -> object:
        with model.generate(dict(enc1), max_new_tokens=n, do_sample=False, eos_token_id=None,
                            pad_token_id=tok.pad_token_id) as tracer:
            for _ in tracer.iter[:n]:
                envoy.input[:] += vector
            out = tracer.result.save()
        return out

    def sequential() -> object:
        return ours_row(False)(), ours_row(True)()

    variants = {
        "hook, 2 rows": hooked(2),
        "sw.steer (baseline+steered)": ours_steer,
        "hook, 1 row": hooked(1),
        "engine, 1 steered row": ours_row(True),
        "bare nnsight loop, 1 row": bare_nnsight,
        "2 sequential engine calls": sequential,
        "sw.steer, baseline held": slider_move,
    }
    # Same tokens first: our path and the hook agree on the steered continuation.
    result = ours_steer()
    reference = hooked(2)()
    assert result.steered_ids == reference[1, : len(result.steered_ids)].tolist(), "steered tokens differ"
    assert result.baseline_ids == reference[0, : len(result.baseline_ids)].tolist(), "baseline tokens differ"

    t = measure(variants, repeats, args.device)
    rows = [
        ("(a) sw.steer (baseline+steered)", "sw.steer (baseline+steered)", "hook, 2 rows"),
        ("(a) engine, 1 steered row", "engine, 1 steered row", "hook, 1 row"),
        ("(a) bare nnsight loop, 1 row", "bare nnsight loop, 1 row", "hook, 1 row"),
        ("(b) one batched call (2 rows)", "sw.steer (baseline+steered)", "2 sequential engine calls"),
        ("(c) slider move (steered row only)", "sw.steer, baseline held", "sw.steer (baseline+steered)"),
    ]
    print(f"GPT-2-small-shaped random model, {n} new tokens, greedy, {args.threads} threads, "
          f"device {args.device}, median of {repeats}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}")
    print(f"{'measurement':32} {'ours s':>7} {'base s':>7} {'ratio':>6} {'ours cpu':>9} {'base cpu':>9} "
          f"{'cpu ratio':>9}  baseline")
    for label, ours, base in rows:
        o, b = t[ours], t[base]
        print(f"{label:32} {o['wall']:7.3f} {b['wall']:7.3f} {o['wall'] / b['wall']:6.2f} {o['cpu']:9.3f} "
              f"{b['cpu']:9.3f} {o['cpu'] / b['cpu']:9.2f}  {base}")


if __name__ == "__main__":
    main()
