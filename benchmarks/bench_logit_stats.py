"""Benchmark: all-feature logit statistics vs a bare chunked matmul of the same matrices.

    python benchmarks/bench_logit_stats.py            # 24,576 features, 3 rounds
    python benchmarks/bench_logit_stats.py --quick    # 4,096 features, 1 round
    python benchmarks/bench_logit_stats.py --baselines   # kind thresholds vs random directions

GPT-2-small shapes: a random SAE (24,576 x 768, unit-norm decoder rows) and a
randomly initialised GPT-2 (768 wide, 50,257-token vocabulary, 2 blocks: only
the final norm and the unembedding matter here) with a byte-level BPE of
50,257 tokens trained once on local text (cached). Each measurement runs in a
fresh subprocess limited to ``--threads`` threads (default 2) and reports its
wall time and peak RSS (ru_maxrss). The baseline computes exactly the same
chunks of ``W_dec @ W_U`` and nothing else; ``sw.logit_stats`` adds the final
norm folding, mean/std/skew/kurtosis, top-10 and bottom-10 tokens, and the table.
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
    import torch

    binding = build_binding()
    setup_rss = peak_rss_mb()
    start, cpu = time.perf_counter(), time.process_time()
    if kind == "matmul":
        W_dec, W_U = binding.sae.W_dec.detach(), binding.unembedding().detach()
        with torch.no_grad():
            for i in range(0, n_features, chunk):
                W_dec[i : i + chunk] @ W_U
    else:
        import saewidgets as sw

        table = sw.logit_stats(binding, range(n_features), chunk_size=chunk, progress=False)
        assert len(table) == n_features
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu,
            "peak_rss_mb": peak_rss_mb(), "setup_rss_mb": setup_rss}


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
    parser.add_argument("--worker", choices=["matmul", "stats"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baselines:
        baselines()
        return
    args.features = args.features or (4096 if args.quick else D_SAE)
    args.rounds = args.rounds or (1 if args.quick else 3)
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
    results: dict[str, list[dict]] = {"matmul": [], "stats": []}
    for _ in range(args.rounds):  # alternate, so load changes on a shared machine hit both
        for kind in results:
            results[kind].append(run_worker(kind, args))
    med = lambda kind, key: statistics.median(r[key] for r in results[kind])  # noqa: E731
    base, base_cpu = med("matmul", "seconds"), med("matmul", "cpu_seconds")
    print(f"logit statistics: {args.features:,} features x {VOCAB:,} tokens, d_model {D_MODEL}, chunk {args.chunk}, "
          f"{args.threads} threads, median of {args.rounds} round(s); load average now {os.getloadavg()[0]:.1f}\n")
    print(f"{'':30s} {'wall s':>8s} {'ratio':>7s} {'cpu s':>8s} {'ratio':>7s} {'peak RSS MB':>12s} {'after setup':>12s}")
    for kind, label in (("matmul", "bare chunked W_dec @ W_U"), ("stats", "sw.logit_stats (k=10)")):
        secs, cpu = med(kind, "seconds"), med(kind, "cpu_seconds")
        rss = max(r["peak_rss_mb"] for r in results[kind])
        setup = max(r["setup_rss_mb"] for r in results[kind])
        print(f"{label:30s} {secs:8.2f} {secs / base:6.2f}x {cpu:8.2f} {cpu / base_cpu:6.2f}x {rss:12.0f} {setup:12.0f}")
    print("\nall rounds (seconds):", {k: [round(r["seconds"], 2) for r in v] for k, v in results.items()})


if __name__ == "__main__":
    main()
