"""Self-explanation speed: 32 scales in one batched generation vs a sequential loop over scales.

Model: a GPT-2-small-shaped random transformer (transformers GPT2Config defaults: 12 layers
x 768, vocab 50257), the tiny test BPE tokenizer (ids fit the vocabulary), a random SAE at
layer 6. All rows are measured in the same run:

- one generation: a single patched row (the unit of cost);
- batched: ``sw.self_explain`` with 32 scales, one generation of 35 rows (32 scales plus the
  three reference rows: zero vector, mean embedding, nothing patched) after a one-row prompt trace;
- sequential: the same call with ``batch_size=1``: the same 35 rows, one generation each.

    python benchmarks/bench_self_explain.py [--quick] [--device cpu|cuda]

``--organism`` instead measures quality on the model organism's ground truth: how many of
its 10 concept features are named by their self-explanation, with the paper's method, with
a layer map, and with control directions (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tools/ (hook references, organism build)

import saewidgets as sw  # noqa: E402
from saewidgets.self_explanation.explain import self_explain  # noqa: E402
from saewidgets.engine import Decoding, Edit, Read, Row, generate  # noqa: E402
from saewidgets.self_explanation.prompts import build_prompt  # noqa: E402
from tiny_models import random_sae, tiny_tokenizer  # noqa: E402


def timed(fn, repeats: int) -> tuple[float, float, object]:
    """Median wall and process-CPU seconds of ``repeats`` calls, and the last result."""
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), result


def organism_quality() -> None:
    """Concepts named by their feature's self-explanation on the model organism, per setting."""
    import itertools
    import random
    import re

    from saewidgets.self_explanation.explain import fit_layer_map
    from tools.organism.corpus import concept_sentence, iter_documents
    from tools.organism.vocab import CATEGORY_NOUN

    model, sae = sw.organism()
    truth = sw.organism_ground_truth()
    concepts = list(truth.concepts)
    features = [truth.feature(c) for c in concepts]
    hf, tok = model._module, model.tokenizer

    def named(text: str, concept: str) -> bool:
        return bool(set(re.findall(r"[a-z]+", text.lower())) & {concept, CATEGORY_NOUN[concept][1]})

    def score(df, labels) -> tuple[int, int]:
        chosen = sum(named(df.attrs["chosen_explanation"][f], c) for f, c in zip(labels, concepts))
        anywhere = sum(any(named(e, c) for e in df[df["feature"] == f]["explanation"]) for f, c in zip(labels, concepts))
        return chosen, anywhere

    def concept_directions(layer: int) -> torch.Tensor:
        """Centred mean residual entering block ``layer`` at each concept's words in context."""
        rng, means = random.Random(0), []
        for concept in concepts:
            rows = []
            for word in truth.concepts[concept]:
                for _ in range(4):
                    text = concept_sentence(rng, concept, word)
                    enc = tok(text, return_offsets_mapping=True)
                    start = text.find(word)
                    pos = [i for i, (a, b) in enumerate(enc["offset_mapping"]) if a < start + len(word) and start < b]
                    with torch.no_grad():
                        hidden = hf(torch.tensor([enc["input_ids"]]), output_hidden_states=True).hidden_states
                    rows.append(hidden[layer][0, pos[-1]])
            means.append(torch.stack(rows).mean(0))
        dirs = torch.stack(means) - torch.stack(means).mean(0)
        return dirs / dirs.norm(dim=1, keepdim=True)

    common = dict(max_new_tokens=6, progress=False)
    results = []
    df = self_explain(model, sae, features=features, **common)
    results.append(("paper's method, defaults", *score(df, features)))
    for n_docs in (200, 400):
        texts = list(itertools.islice(iter_documents(123), n_docs))
        layer_map = fit_layer_map(model, sae, texts, 0, batch_size=100, progress=False)
        df = self_explain(model, sae, features=features, layer_map=layer_map, **common)
        results.append((f"layer map from {n_docs} documents (R^2 {layer_map.r2:.2f})", *score(df, features)))
    for source, layer in ((0, 0), (truth.layer, 0), (truth.layer, 1)):
        df = self_explain(model, None, concept_directions(source), layer=layer, **common)
        labels = list(dict.fromkeys(df["feature"]))
        results.append((f"control: concept directions of block {source}, injected at block {layer}", *score(df, labels)))
    print(f"model organism, {len(concepts)} concepts; named at the chosen scale / at any of the 32 scales")
    for name, chosen, anywhere in results:
        print(f"{name:62s} {chosen:3d}/{len(concepts)} {anywhere:3d}/{len(concepts)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--organism", action="store_true", help="ground-truth quality on the model organism")
    parser.add_argument("--quick", action="store_true", help="one repeat, no many-features row")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    args = parser.parse_args()
    # Random weights drive softmax/GELU tails into denormal floats, which are very slow on x86
    # CPUs; flushing them to zero affects both paths alike.
    torch.set_flush_denormal(True)
    if args.organism:
        organism_quality()
        return
    repeats = 1 if args.quick else 3
    n_features = 8

    import transformers as tf

    torch.manual_seed(0)
    hf = tf.GPT2LMHeadModel(tf.GPT2Config()).eval().to(args.device)
    model = sw.load_model(hf, tokenizer=tiny_tokenizer())
    sae = random_sae(768, 256, layer=6)
    n = args.max_new_tokens
    common = dict(max_new_tokens=n, progress=False)
    prompt = build_prompt(model.tokenizer, "meaning")
    ids = prompt.input_ids.tolist()
    patch = Edit(1, sae.W_dec[0].detach() * 40, op="replace", positions=prompt.positions)
    reads = [Read("probe", 11), Read("logits", site="logits")]

    def one_generation():  # one patched row, read like a sweep's row
        return generate(model, [Row(ids, (patch,))], Decoding(max_new_tokens=n, prepend_bos=False), reads)

    def batched():
        return self_explain(model, sae, 3, **common)

    def sequential():
        return self_explain(model, sae, 3, batch_size=1, **common)

    def many_features():
        return self_explain(model, sae, features=list(range(n_features)), **common)

    one_generation()  # warm-up
    t_one, c_one, _ = timed(one_generation, repeats)
    t_batched, c_batched, a = timed(batched, repeats)
    t_sequential, c_sequential, b = timed(sequential, repeats)
    # The two paths agree (same rows, same greedy tokens).
    assert a["generated"].tolist() == b["generated"].tolist(), "batched and sequential disagree"
    rows = [
        ("one generation (1 row)", t_one, c_one, 1),
        ("batched: 32 scales, 1 call (35 rows)", t_batched, c_batched, 35),
        ("sequential: 32 scales, 35 calls of 1 row", t_sequential, c_sequential, 35),
    ]
    if not args.quick:
        t_many, c_many, _ = timed(many_features, repeats)
        rows.append((f"batched: {n_features} features x 32 scales, 1 call", t_many, c_many, 3 + 32 * n_features))
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(f"GPT-2-small-shaped random model (12 x 768, vocab 50257), prompt {prompt.length} tokens, "
          f"{n} new tokens, greedy; device {args.device} ({device}), torch threads {torch.get_num_threads()}, "
          f"median of {repeats}")
    print(f"{'run':48s} {'wall s':>8s} {'cpu s':>8s} {'rows':>5s} {'wall x one gen':>15s} {'speed-up vs seq':>16s}")
    for name, t, c, r in rows:
        print(f"{name:48s} {t:8.2f} {c:8.2f} {r:5d} {t / t_one:15.2f} {t_sequential / t:16.2f}")
    print(f"\nbatched is {t_sequential / t_batched:.1f}x faster than the sequential loop (wall; "
          f"{c_sequential / c_batched:.1f}x in CPU time); 32 scales cost {t_batched / t_one:.2f}x one single generation")


if __name__ == "__main__":
    main()
