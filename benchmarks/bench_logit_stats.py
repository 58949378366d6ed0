"""Benchmark: all-feature logit statistics vs a bare chunked matmul of the same matrices.

    python benchmarks/bench_logit_stats.py            # 24,576 features, 3 rounds
    python benchmarks/bench_logit_stats.py --quick    # 4,096 features, 1 round

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
    start = time.perf_counter()
    if kind == "matmul":
        W_dec, W_U = binding.sae.W_dec.detach(), binding.unembedding().detach()
        with torch.no_grad():
            for i in range(0, n_features, chunk):
                W_dec[i : i + chunk] @ W_U
    else:
        import saewidgets as sw

        table = sw.logit_stats(binding, range(n_features), chunk_size=chunk, progress=False)
        assert len(table) == n_features
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb(), "setup_rss_mb": setup_rss}


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
    parser.add_argument("--worker", choices=["matmul", "stats"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.features = args.features or (4096 if args.quick else D_SAE)
    args.rounds = args.rounds or (1 if args.quick else 3)
    if args.chunk is None:
        sys.path.insert(0, str(ROOT))
        from saewidgets.analysis.logit_core import auto_chunk

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
    base = statistics.median(r["seconds"] for r in results["matmul"])
    print(f"logit statistics: {args.features:,} features x {VOCAB:,} tokens, d_model {D_MODEL}, chunk {args.chunk}, "
          f"{args.threads} threads, median of {args.rounds} round(s)\n")
    print(f"{'':34s} {'seconds':>9s} {'ratio':>7s} {'peak RSS MB':>12s} {'RSS after setup':>16s}")
    for kind, label in (("matmul", "bare chunked W_dec @ W_U"), ("stats", "sw.logit_stats (k=10)")):
        secs = statistics.median(r["seconds"] for r in results[kind])
        rss = max(r["peak_rss_mb"] for r in results[kind])
        setup = max(r["setup_rss_mb"] for r in results[kind])
        print(f"{label:34s} {secs:9.2f} {secs / base:6.2f}x {rss:12.0f} {setup:16.0f}")
    print("\nall rounds (seconds):", {k: [round(r["seconds"], 2) for r in v] for k, v in results.items()})


if __name__ == "__main__":
    main()
