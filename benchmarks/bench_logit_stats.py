"""Benchmark: all-feature logit statistics vs a bare chunked matmul of the same matrices.

    python benchmarks/bench_logit_stats.py            # 24,576 features, 2 rounds
    python benchmarks/bench_logit_stats.py --quick    # 4,096 features, 1 round
    python benchmarks/bench_logit_stats.py --baselines   # kind thresholds vs random directions

GPT-2-small shapes: a random SAE (24,576 x 768, unit-norm decoder rows) and a
randomly initialised GPT-2 (768 wide, 50,257-token vocabulary, 2 blocks: only
the final norm and the unembedding matter here) with a byte-level BPE of
50,257 tokens trained once on local text (cached). Each measurement runs in a
fresh subprocess limited to ``--threads`` threads (default 2) and reports its
wall time, process CPU time and peak RSS (ru_maxrss), for a cold call (the first in
the process: it also pays the once-per-model work, token strings and the kind
thresholds' random directions) and a warm call right after. The baseline computes
exactly the same chunks of ``W_dec @ W_U`` and nothing else (a fresh output per chunk,
as a bare loop does); ``sw.logit_stats`` adds the final norm folding,
mean/std/skew/kurtosis, top-10 and bottom-10 tokens, and the table;
``logit_lens_table`` adds the enrichment score of the 12 default token classes of
every feature, from the same chunks.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

D_MODEL, D_SAE, VOCAB = 768, 24576, 50257
ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "saewidgets-bench"


def bpe_tokenizer():
    """A 50,257-token byte-level BPE trained on this Python's own library sources (cached)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    path = CACHE / f"bpe{VOCAB}.json"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        files, total = [], 0
        for file in sorted((Path(sys.base_prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}").rglob("*")):
            if file.suffix in (".py", ".txt", ".md", ".rst", ".html") and file.is_file() and file.stat().st_size < 2e6:
                files.append(file)
                total += file.stat().st_size
                if total > 60e6:
                    break
        bpe = ByteLevelBPETokenizer()
        texts = (f.read_text(encoding="utf-8", errors="ignore") for f in files)
        bpe.train_from_iterator(texts, vocab_size=VOCAB, min_frequency=2, special_tokens=["<|endoftext|>"], show_progress=False)
        bpe.save(str(path))
    from tokenizers import Tokenizer

    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_file(str(path)), eos_token="<|endoftext|>",
                                   bos_token="<|endoftext|>", pad_token="<|endoftext|>")


def build_binding(seed: int = 0):
    """The GPT-2-small-shaped model + random SAE, bound."""
    import torch
    import transformers as tf

    sys.path.insert(0, str(ROOT))
    import saewidgets as sw

    torch.manual_seed(seed)
    tok = bpe_tokenizer()
    config = tf.GPT2Config(vocab_size=VOCAB, n_embd=D_MODEL, n_layer=2, n_head=12, n_positions=64)
    model = sw.load_model(tf.GPT2LMHeadModel(config).eval(), tokenizer=tok)
    W_dec = torch.randn(D_SAE, D_MODEL)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    sae = sw.SAE(W_dec.T.clone(), W_dec, hook="blocks.1.hook_resid_pre")
    return sw.bind(model, sae)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(kind: str, n_features: int, chunk: int) -> dict:
    """Time ``kind`` twice in this fresh process (imports done): a cold call (it pays the
    per-model work that a session does once: token strings, the kind thresholds' 512 random
    directions, the effective unembedding) and a warm call right after."""
    import torch

    binding = build_binding()
    import saewidgets.logit_lens  # noqa: F401  (imports are setup, not timed)

    setup_rss = peak_rss_mb()

    def call() -> None:
        if kind == "matmul":
            W_dec, W_U = binding.sae.W_dec.detach(), binding.unembedding().detach()
            with torch.no_grad():
                for i in range(0, n_features, chunk):
                    W_dec[i : i + chunk] @ W_U
        elif kind == "stats":
            import saewidgets as sw

            assert len(sw.logit_stats(binding, range(n_features), chunk_size=chunk, progress=False)) == n_features
        else:
            from saewidgets.logit_lens import logit_lens_table

            table = logit_lens_table(binding, features=range(n_features), chunk_size=chunk, progress=False)
            assert len(table) == n_features

    out = {}
    for when in ("cold", "warm"):
        start, cpu = time.perf_counter(), time.process_time()
        call()
        out[when] = {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu}
    return {**out, "peak_rss_mb": peak_rss_mb(), "setup_rss_mb": setup_rss}


def baselines(n_random: int = 4096) -> None:
    """Skew / kurtosis / bimodality of random Gaussian decoder rows (the null for ``kind``)
    on each unembedding at hand, and the kinds of the organism's real SAE features."""
    import numpy as np
    import pandas as pd
    import torch

    sys.path.insert(0, str(ROOT))
    import saewidgets as sw

    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_models import random_sae, tiny_model

    cases = [("GPT-2-small-shaped, random init", build_binding())]
    for family in ("gpt2", "llama", "gemma2"):
        cases.append((f"tiny random {family} (vocab 380)", sw.bind(tiny_model(family), random_sae(32, 64, layer=1))))
    organism = None
    try:
        organism = sw.bind(*sw.organism())
        cases.append(("model organism (trained)", organism))
    except Exception as error:  # not built in this checkout
        print(f"(model organism unavailable: {error})")
    from saewidgets.logit_lens.kinds import feature_kinds, fixed_thresholds

    print(f"{n_random} random Gaussian decoder rows per unembedding (seed 1; the kind null uses seed 0); "
          "quantiles over rows\n")
    print(f"{'unembedding':34s} {'skew 0.1%..99.9%':>18s} {'kurtosis 0.1%..99.9%':>21s} {'bimod. max':>10s}"
          f"  {'kinds, fixed floors':28s} kinds, thresholds vs null (S, B)")
    for label, binding in cases:
        rows = torch.randn(n_random, binding.d_model, generator=torch.Generator().manual_seed(1))
        for cosine in (False, True):
            st = sw.logit_stats(binding, rows, k=0, cosine=cosine, progress=False)
            q = lambda col: np.quantile(st[col], [0.001, 0.999])  # noqa: E731, B023
            fixed = pd.Series(feature_kinds(st["skew"], st["kurtosis"], fixed_thresholds())).value_counts().to_dict()
            t = st.attrs["kind_thresholds"]
            name = label + (" cos" if cosine else "")
            print(f"{name:34s} {q('skew')[0]:7.2f} ..{q('skew')[1]:6.2f}   {q('kurtosis')[0]:7.2f} ..{q('kurtosis')[1]:7.2f}"
                  f" {st['bimodality'].max():10.3f}  {str(fixed):28s} {st['kind'].value_counts().to_dict()} "
                  f"({t['skew']:.2f}, {t['bimodality']:.2f})")
    if organism is not None:
        st = sw.logit_stats(organism, k=8, progress=False)
        fixed = pd.Series(feature_kinds(st["skew"], st["kurtosis"], fixed_thresholds())).value_counts().to_dict()
        print(f"\norganism SAE features ({len(st)}): {st['kind'].value_counts().to_dict()} "
              f"(fixed floors alone: {fixed}); thresholds {st.attrs['kind_thresholds']}")
        gt = sw.organism_ground_truth()
        concept_features = {gt.feature(c): c for c in gt.concepts}
        cols = ["feature", "skew", "kurtosis", "bimodality", "kind", "top_tokens"]
        print(st[st.feature.isin(concept_features)][cols].assign(
            concept=lambda d: d.feature.map(concept_features)).to_string(index=False, max_colwidth=70))
        print("\nmost extreme features by kind:")
        for kind in ("prediction", "suppression", "partition"):
            sub = st[st.kind == kind].sort_values("skew", key=abs, ascending=False).head(3)
            if len(sub):
                print(sub[cols].to_string(index=False, max_colwidth=70))


def run_worker(kind: str, args: argparse.Namespace) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    cmd = [sys.executable, __file__, "--worker", kind, "--features", str(args.features), "--chunk", str(args.chunk),
           "--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="4,096 features, one round")
    parser.add_argument("--features", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--chunk", type=int, default=None, help="features per chunk (default: sw.logit_stats' own)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--baselines", action="store_true", help="random-direction baselines for the kind thresholds")
    parser.add_argument("--kinds", default="stats,table", help="variants besides the matmul: stats,table")
    parser.add_argument("--worker", choices=["matmul", "stats", "table"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baselines:
        baselines()
        return
    args.features = args.features or (4096 if args.quick else D_SAE)
    args.rounds = args.rounds or (1 if args.quick else 2)
    if args.chunk is None:
        sys.path.insert(0, str(ROOT))
        from saewidgets.logit_lens.core import auto_chunk

        args.chunk = auto_chunk(VOCAB, args.features, None)
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(worker(args.worker, args.features, args.chunk)))
        return
    bpe_tokenizer()  # train/cache once, outside the timings
    kinds = args.kinds.split(",")
    results: dict[str, list[dict]] = {kind: [] for kind in ["matmul", *[k for k in kinds if k != "matmul"]]}
    load_before = os.getloadavg()
    for _ in range(args.rounds):  # alternate, so load changes on a shared machine hit every variant
        for kind in results:
            results[kind].append(run_worker(kind, args))
    med = lambda kind, when, key: statistics.median(r[when][key] for r in results[kind])  # noqa: E731
    print(f"logit statistics: {args.features:,} features x {VOCAB:,} tokens, d_model {D_MODEL}, chunk {args.chunk}, "
          f"{args.threads} threads, median of {args.rounds} round(s); load average (1/5/15 min) before "
          f"{'/'.join(f'{x:.1f}' for x in load_before)}, after {'/'.join(f'{x:.1f}' for x in os.getloadavg())}\n")
    print(f"{'':31s} {'call':5s} {'wall s':>8s} {'ratio':>7s} {'cpu s':>8s} {'ratio':>7s} {'peak RSS MB':>12s} "
          f"{'after setup':>12s}")
    labels = {"matmul": "bare chunked W_dec @ W_U", "stats": "sw.logit_stats (k=10)",
              "table": "logit_lens_table (12 classes)"}
    for kind in results:
        for when in ("cold", "warm"):
            secs, cpu = med(kind, when, "seconds"), med(kind, when, "cpu_seconds")
            base, base_cpu = med("matmul", when, "seconds"), med("matmul", when, "cpu_seconds")
            rss = max(r["peak_rss_mb"] for r in results[kind])
            setup = max(r["setup_rss_mb"] for r in results[kind])
            print(f"{labels[kind]:31s} {when:5s} {secs:8.2f} {secs / base:6.2f}x {cpu:8.2f} {cpu / base_cpu:6.2f}x "
                  f"{rss:12.0f} {setup:12.0f}")
    rounds = {k: {w: [round(r[w]["seconds"], 2) for r in v] for w in ("cold", "warm")} for k, v in results.items()}
    print("\nevery round (wall seconds):", rounds)
    per_round = [{k: round(results[k][i]["warm"]["seconds"] / results["matmul"][i]["warm"]["seconds"], 3)
                  for k in results if k != "matmul"} for i in range(args.rounds)]
    print("warm ratio in each round (vs that round's matmul):", per_round)


if __name__ == "__main__":
    main()
