"""Task vectors: gradient cleanup batched vs one prompt at a time, and the layer sweep vs each layer
run separately; on the model organism and a GPT-2-small-shaped random model.

(a) cleanup steps per second: ``cleanup`` (saewidgets.tasks.features) with every prompt in one
    traced forward+backward per step (``batch_size=N``) vs one trace per prompt per step
    (``batch_size=1``, gradients summed: the same update). ``lam=0`` and no early stop, so both
    run the same number of steps; the script checks that both give the same NLL trajectory.
(b) the layer sweep (task vectors at every layer from one pass, every (layer, prompt) scored in
    batched passes: ``sw.layer_sweep(methods=["task_vector"])``) vs, for each layer,
    ``sw.task_vector`` + ``sw.evaluate_task_vector``; both give the same numbers (checked).

Variants are interleaved in each repeat after a warm-up; medians of wall and process-CPU time
(the CPU ratio is steadier on a shared machine).

    python benchmarks/bench_tasks.py [--quick] [--threads 1] [--device cpu|cuda]
    python benchmarks/bench_tasks.py --transfer [--no-bos]   # the organism's tasks: which extraction/insertion transfers
    python benchmarks/bench_tasks.py --defaults      # cleanup of the category vector with the published defaults
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import saewidgets as sw  # noqa: E402
from timing import measure  # noqa: E402  (benchmarks/timing.py)
from saewidgets.tasks.features import CleanupSettings, cleanup  # noqa: E402
from saewidgets.tasks.runs import n_layers  # noqa: E402
from tiny_models import random_sae, tiny_tokenizer  # noqa: E402

PAIRS = [("red", "green"), ("blue", "fox"), ("quick", "lazy"), ("cats", "dogs"), ("one", "two"), ("Hello", "World"),
         ("year", "days"), ("brown", "jumps"), ("three", "mostly"), ("after", "said"), ("over", "dog"),
         ("green", "BLUE"), ("two", "three"), ("lazy", "quick"), ("days", "year"), ("World", "Hello")]


def models(device: str, quick: bool) -> list[tuple[str, object, object, list]]:
    """(name, model, sae, pairs): the organism and a GPT-2-small-shaped random model."""
    import transformers as tf

    organism, organism_sae = sw.organism(device if device != "cpu" else None)
    out = [("organism (4 x 128)", organism, organism_sae, sw.organism_ground_truth().icl_tasks["category"])]
    if not quick:
        torch.manual_seed(0)
        hf = tf.GPT2LMHeadModel(tf.GPT2Config()).eval().to(device)
        gpt2 = sw.load_model(hf, tokenizer=tiny_tokenizer())
        out.append(("GPT-2-small-shaped random (12 x 768)", gpt2, random_sae(768, 1024, layer=6).to(device), PAIRS))
    return out


def bench_cleanup(name: str, model, sae, pairs, n: int, steps: int, repeats: int, device: str) -> list[tuple]:
    few = sw.icl_prompts(pairs, shots=4, n=n, seed=0)
    tv = sw.task_vector(model, few, sae.hook.layer, prepend_bos=True).vector
    zero = [p.zero_shot() for p in few]
    settings = CleanupSettings(lam=0.0, lr=1e-2, steps=steps, patience=steps + 1)

    def run(batch: int) -> Callable[[], object]:
        return lambda: cleanup(model, sae, tv, zero, settings, bos=True, batch_size=batch, progress=False)

    together, alone = run(n)(), run(1)()
    a, b = together[2]["nll"].to_numpy(), alone[2]["nll"].to_numpy()
    assert len(a) == len(b) == steps and abs(a - b).max() < 1e-3 * max(1.0, abs(a).max()), (a, b)
    t = measure({"batched": run(n), "one at a time": run(1)}, repeats, device)
    return [(f"(a) {name}: cleanup, {n} prompts", steps / t["batched"]["wall"], steps / t["one at a time"]["wall"],
             t["one at a time"]["wall"] / t["batched"]["wall"], t["one at a time"]["cpu"] / t["batched"]["cpu"],
             "steps/s; batched vs one prompt a trace")]


def bench_sweep(name: str, model, sae, pairs, n: int, repeats: int, device: str) -> list[tuple]:
    few = sw.icl_prompts(pairs, shots=4, n=n, seed=0)
    zero = sw.icl_prompts(pairs, shots=0, n=n, seed=1)
    layers = n_layers(model)

    def sweep() -> object:
        return sw.layer_sweep(model, None, few, zero, methods=["task_vector"], prepend_bos=True, progress=False).frame

    def separately() -> list:
        out = []
        for layer in range(layers):
            tv = sw.task_vector(model, few, layer, prepend_bos=True)
            out.append(sw.evaluate_task_vector(model, tv, zero))
        return out

    frame, single = sweep(), separately()
    values = frame[frame["method"] == "task_vector"]
    assert [round(v, 4) for v in values["nll"]] == [round(e.nll, 4) for e in single]
    t = measure({"sweep": sweep, "separately": separately}, repeats, device)
    return [(f"(b) {name}: sweep, {layers} layers", t["sweep"]["wall"], t["separately"]["wall"],
             t["separately"]["wall"] / t["sweep"]["wall"], t["separately"]["cpu"] / t["sweep"]["cpu"],
             "seconds; one sweep vs each layer on its own")]


def transfer(device: str, bos: bool = True) -> None:
    """Accuracy of zero-shot prompts with each task vector, for every task, extraction and insertion."""
    model, sae = sw.organism(device if device != "cpu" else None)
    truth = sw.organism_ground_truth()
    print("organism, 16 prompts of 6 shots for the vector, 32 zero-shot prompts on other queries, "
          + ("BOS first" if bos else "no BOS"))
    print(f"{'task':10} {'position':9} {'insert':7} {'0-shot':>6} {'6-shot':>6}  accuracy at layer 0 1 2 3")
    for task in ("category", "uppercase", "digit", "french", "antonym"):
        pairs = truth.icl_tasks[task]
        few = sw.icl_prompts(pairs, shots=6, n=16, seed=0)
        asked = {p.query for p in few}
        zero = sw.icl_prompts([p for p in pairs if p[0] not in asked] or pairs, shots=0, n=32, seed=1)
        for position in ("separator", "last"):
            for insert in ("replace", "add"):
                frame = sw.layer_sweep(model, sae, few, zero, methods=["task_vector"], position=position,
                                       insert=insert, prepend_bos=bos, progress=False).frame
                base = dict(zip(frame["method"], frame["accuracy"]))
                accs = frame[frame["method"] == "task_vector"]["accuracy"].tolist()
                print(f"{task:10} {position:9} {insert:7} {base['zero_shot']:6.0%} {base['few_shot']:6.0%}  "
                      + " ".join(f"{a:4.0%}" for a in accs), flush=True)


def defaults(device: str) -> None:
    """Gradient cleanup of the category vector at the SAE's layer with the published defaults."""
    model, sae = sw.organism(device if device != "cpu" else None)
    pairs = sw.organism_ground_truth().icl_tasks["category"]
    few = sw.icl_prompts(pairs, shots=6, n=16, seed=0)
    asked = {p.query for p in few}
    zero = sw.icl_prompts([p for p in pairs if p[0] not in asked], shots=0, n=32, seed=1)
    start = time.perf_counter()
    tf = sw.task_features(model, sae, few, method="cleanup", eval_prompts=zero, progress=False)
    first = int(tf.history["l0"].iloc[0])
    print(f"cleanup (lam {0.03}, lr 1e-2, <= 1000 steps, patience 100): {first} -> {tf.l0} features in {tf.steps} "
          f"steps, {time.perf_counter() - start:.0f} s; zero-shot accuracy {tf.accuracy:.0%}, NLL {tf.nll:.4f}; "
          f"features {dict((f, round(w, 3)) for f, w in tf.features.items())}")
    from saewidgets.tasks import feature_roles

    columns = ["feature", "weight", "on_examples", "at_separators", "alone_accuracy", "alone_share", "without_accuracy",
               "needed_share", "role"]
    print(feature_roles(model, sae, tf, few, zero)[columns].round(3).to_string(index=False))
    for method in ("encode", "ito"):
        code = sw.task_features(model, sae, few, method=method, eval_prompts=zero)
        print(f"{method}: L0 {code.l0}, accuracy {code.accuracy:.0%}, NLL {code.nll:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the organism only, 1 repeat")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: see benchmarks/README)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--steps", type=int, default=10, help="cleanup steps per measured run")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--transfer", action="store_true", help="print the organism's transfer table and stop")
    parser.add_argument("--defaults", action="store_true", help="run cleanup with the published defaults and stop")
    parser.add_argument("--no-bos", action="store_true", help="--transfer without BOS (methods.md section 8's setting)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # random weights otherwise hit slow denormal floats on x86
    if args.transfer:
        return transfer(args.device, bos=not args.no_bos)
    if args.defaults:
        return defaults(args.device)
    repeats = args.repeats or (1 if args.quick else 3)
    rows = []
    for name, model, sae, pairs in models(args.device, args.quick):
        rows += bench_cleanup(name, model, sae, pairs, args.prompts, args.steps, repeats, args.device)
        rows += bench_sweep(name, model, sae, pairs, args.prompts, repeats, args.device)
    print(f"{args.prompts} prompts, {args.steps} cleanup steps a run, {args.threads} threads, device {args.device}, "
          f"median of {repeats}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'measurement':62} {'ours':>8} {'base':>8} {'speed-up':>8} {'cpu x':>6}  unit")
    for label, ours, base, ratio, cpu_ratio, unit in rows:
        print(f"{label:62} {ours:8.3f} {base:8.3f} {ratio:8.2f} {cpu_ratio:6.2f}  {unit}")


if __name__ == "__main__":
    main()
