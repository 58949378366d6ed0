"""Benchmark: token-set enrichment of every feature vs SAELens's calculate_batch_enrichment_scores.

    python benchmarks/bench_enrichment.py            # 24,576 features x 20 sets; SAELens on 256
    python benchmarks/bench_enrichment.py --quick    # 2,048 features; SAELens on 64

Same GPT-2-small-shaped model and random SAE as bench_logit_stats.py. The 20
token sets are built-in classes of the 50,257-token BPE (sizes printed). Rows:

* SAELens: ``calculate_batch_enrichment_scores`` imported from the INSTALLED sae-lens
  package (``sae_lens.tutorial.tsea``, or ``sae_lens.analysis.tsea`` in older releases),
  run by the Python of a separate venv (default /tmp/saelens-venv; created with
  ``--setup-saelens``, see below), on the logit weights of the first ``--ref`` features,
  which it must hold in memory as sets x features x vocab running sums. It is given
  the weights, so its time does NOT include the ``W_dec @ W_U`` matmul. Without a
  working sae-lens the row is skipped with the reason;
* ``rank_scores`` on the same weights (our kernel alone, same input);
* ``sw.enrichment`` end to end on all features: the chunked matmul, ranks,
  scores, both p-values, q-values and the table.

Each runs in a fresh subprocess with ``--threads`` threads (default 2); time
excludes imports, setup and a small warm-up call; peak RSS is ru_maxrss. Wall
and CPU (process) time are both shown: on a shared machine CPU time is the
steadier measure. The scores of the shared features are compared with SAELens's
and with our own exact reference: a float64 running-sum walk over a stable sort,
evaluated between groups of equal weights (``tie_aware_walk`` below).

The sae-lens venv (``--setup-saelens`` makes it; it needs PyPI):

    python3 -m venv /tmp/saelens-venv --system-site-packages
    /tmp/saelens-venv/bin/pip install torch==2.13.0 sae-lens
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_logit_stats import D_SAE, ROOT, VOCAB, bpe_tokenizer, build_binding, peak_rss_mb  # noqa: E402

sys.path.insert(0, str(ROOT))

SETS = ("starts_with_space", "capitalised", "lower", "all_caps", "alphabetic", "digits", "punctuation",
        "open_bracket", "close_bracket", "whitespace", "length_1", "length_2", "length_3", "length_4", "length_5",
        "first_letter_a", "first_letter_e", "first_letter_s", "first_letter_t", "byte")
SAELENS_VENV = Path("/tmp/saelens-venv")

# Runs under the venv's Python: imports the published function from the installed package.
SAELENS_WORKER = """
import json, resource, sys, time
import numpy as np, torch
torch.set_num_threads(int(sys.argv[2]))
try:
    from sae_lens.tutorial.tsea import calculate_batch_enrichment_scores
    where = "sae_lens.tutorial.tsea"
except ImportError:
    from sae_lens.analysis.tsea import calculate_batch_enrichment_scores
    where = "sae_lens.analysis.tsea"
import sae_lens
work = sys.argv[1]
scores = torch.from_numpy(np.load(work + "/weights.npy"))
index_lists = torch.from_numpy(np.load(work + "/index_lists.npy"))
calculate_batch_enrichment_scores(scores[:4], index_lists)  # warm-up, untimed
start, cpu = time.perf_counter(), time.process_time()
es = calculate_batch_enrichment_scores(scores, index_lists)
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
np.save(work + "/saelens_es.npy", es.T.numpy())
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "source": f"{where}.calculate_batch_enrichment_scores, sae-lens {sae_lens.__version__} (installed)"}))
"""


def setup_saelens(venv: Path) -> None:
    """Create ``venv`` (with this Python's packages visible) and install sae-lens from PyPI;
    torch is pinned first so that pip does not pull a CUDA build."""
    subprocess.run([sys.executable, "-m", "venv", str(venv), "--system-site-packages"], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "torch==2.13.0"], check=True)
    subprocess.run([*pip, "sae-lens"], check=True)


def saelens_status(python: Path) -> str | None:
    """None when ``python`` can import SAELens's function, else why not."""
    if not python.exists():
        return f"{python} not found (run with --setup-saelens to create the venv)"
    probe = ("try:\n from sae_lens.tutorial.tsea import calculate_batch_enrichment_scores\n"
             "except ImportError:\n from sae_lens.analysis.tsea import calculate_batch_enrichment_scores\n")
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
    return None if done.returncode == 0 else f"sae-lens not importable there: {done.stderr.strip().splitlines()[-1:]}"


def tie_aware_walk(weights: np.ndarray, members: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The running-sum walk in float64 over a stable descending sort, scored (a) at group
    ends only (equal weights form one step: our definition) and (b) anywhere, with
    whether (b)'s extreme falls inside a group of equal weights."""
    scores, at_tie = np.zeros((len(weights), len(members))), np.zeros((len(weights), len(members)), bool)
    for f, w in enumerate(weights):
        order = np.argsort(-w, kind="stable")
        sorted_w = w[order]
        group_end = np.append(sorted_w[1:] != sorted_w[:-1], True)
        for s, ids in enumerate(members):
            hit = np.zeros(w.size, bool)
            hit[ids] = True
            m = ids.size
            walk = np.cumsum(np.where(hit[order], 1.0 / m, -1.0 / (w.size - m)))
            ends = np.concatenate([[0.0], walk[group_end]])
            scores[f, s] = np.abs(ends).max()
            i = np.abs(walk).argmax()
            at_tie[f, s] = not group_end[i] or (i > 0 and not group_end[i - 1])
    return scores, at_tie


def prepare(work: Path, n_ref: int) -> dict:
    """Weights of the first n_ref features and the padded set index lists, for every worker."""
    import saewidgets as sw

    binding = build_binding()
    classes = sw.token_classes(binding)
    members = [classes.ids(name) for name in SETS]
    width = max(m.size for m in members)
    index_lists = np.full((len(SETS), width), -1, dtype=np.int64)
    for i, m in enumerate(members):
        index_lists[i, : m.size] = m
    np.save(work / "index_lists.npy", index_lists)
    np.save(work / "weights.npy", sw.logit_weights(binding, list(range(n_ref))).numpy())
    return {name: int(m.size) for name, m in zip(SETS, members)}


def worker(kind: str, work: Path, n_features: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    if kind == "core":
        from concurrent.futures import ThreadPoolExecutor

        from saewidgets.logit_lens.ranks import RANK_ROWS, TokenSets, score_rows

        weights = np.load(work / "weights.npy")
        index_lists = np.load(work / "index_lists.npy")
        sets = TokenSets([row[row >= 0] for row in index_lists], weights.shape[1])
        score_rows(weights[:4], sets)  # warm-up, untimed
        start, cpu = time.perf_counter(), time.process_time()
        blocks = range(0, len(weights), RANK_ROWS)  # as sw.enrichment does
        with ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(lambda i: score_rows(weights[i : i + RANK_ROWS], sets)[0], blocks))
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        np.save(work / "core_es.npy", np.concatenate(parts))
    else:
        import saewidgets as sw

        binding = build_binding()
        classes = sw.token_classes(binding).select(SETS)
        sw.enrichment(binding, range(8), classes, progress=False)  # warm-up, untimed
        start, cpu = time.perf_counter(), time.process_time()
        table = sw.enrichment(binding, range(n_features), classes, progress=False)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        n_ref = np.load(work / "weights.npy", mmap_mode="r").shape[0]
        np.save(work / "ours_es.npy", table["es"].to_numpy().reshape(n_features, len(SETS))[:n_ref])
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": peak_rss_mb()}


def _median(results: list[dict]) -> dict:
    """The result with the median wall time, with the median CPU time and the largest RSS."""
    ordered = sorted(results, key=lambda r: r["seconds"])
    middle = dict(ordered[len(ordered) // 2])
    middle["cpu_seconds"] = float(np.median([r["cpu_seconds"] for r in results]))
    middle["peak_rss_mb"] = max(r["peak_rss_mb"] for r in results)
    middle["rounds"] = [round(r["seconds"], 2) for r in results]
    return middle


def run(cmd: list[str], threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"{cmd[:3]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,048 features; SAELens on 64")
    parser.add_argument("--features", type=int, default=None)
    parser.add_argument("--ref", type=int, default=None, help="features given to SAELens (it holds them all in memory)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=None, help="SAELens / rank_scores rounds (median)")
    parser.add_argument("--saelens-venv", type=Path, default=SAELENS_VENV, help="venv with sae-lens installed")
    parser.add_argument("--setup-saelens", action="store_true", help="create --saelens-venv and pip install sae-lens")
    parser.add_argument("--worker", choices=["core", "ours"], help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.features = args.features or (2048 if args.quick else D_SAE)
    args.ref = min(args.features, args.ref or (64 if args.quick else 256))
    args.rounds = args.rounds or (1 if args.quick else 3)
    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.work), args.features, args.threads)))
        return
    python = args.saelens_venv / "bin" / "python"
    if args.setup_saelens and saelens_status(python) is not None:
        try:
            setup_saelens(args.saelens_venv)
        except subprocess.CalledProcessError as error:
            print(f"could not install sae-lens into {args.saelens_venv}: {error}")
    missing = saelens_status(python)
    if missing:
        print(f"SAELens row skipped: {missing}\n")
    bpe_tokenizer()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sizes = prepare(work, args.ref)
        me = [sys.executable, __file__, "--work", tmp, "--features", str(args.features), "--threads", str(args.threads)]
        refs, cores = [], []
        for _ in range(args.rounds):  # alternate, so that load changes on a shared machine hit both
            if not missing:
                refs.append(run([str(python), "-c", SAELENS_WORKER, tmp, str(args.threads)], args.threads))
            cores.append(run([*me, "--worker", "core"], args.threads))
        ref, core = (_median(refs) if refs else None), _median(cores)
        ours = run([*me, "--worker", "ours"], args.threads)
        index_lists = np.load(work / "index_lists.npy")
        exact, at_tie = tie_aware_walk(np.load(work / "weights.npy"), [row[row >= 0] for row in index_lists])
        core_es, ours_es = np.abs(np.load(work / "core_es.npy")), np.abs(np.load(work / "ours_es.npy"))
        saelens_es = np.load(work / "saelens_es.npy") if ref else None
    jobs = [("core", core, args.ref), ("ours", ours, args.features)] + ([("ref", ref, args.ref)] if ref else [])
    per = {k: r["seconds"] / n * 1000 for k, r, n in jobs}
    per_cpu = {k: r["cpu_seconds"] / n * 1000 for k, r, n in jobs}
    base, base_cpu = (per["ref"], per_cpu["ref"]) if ref else (float("nan"), float("nan"))
    print(f"enrichment: {len(SETS)} token sets x {VOCAB:,} tokens, {args.threads} threads; "
          f"load average now {os.getloadavg()[0]:.1f}")
    print("set sizes:", ", ".join(f"{k} {v}" for k, v in sizes.items()), f"(total {sum(sizes.values()):,})")
    print(f"reference: {ref['source'] if ref else 'none (SAELens skipped)'}; SAELens / rank_scores: median of "
          f"{args.rounds} round(s) (wall s {ref['rounds'] if ref else '-'} / {core['rounds']}); "
          "time excludes imports and a small warm-up call\n")
    print(f"{'':42s} {'features':>8s} {'wall s':>8s} {'ms/feat':>8s} {'speed-up':>8s} {'cpu ms/feat':>11s} "
          f"{'speed-up':>8s} {'peak RSS MB':>11s}")
    rows = ([("SAELens calculate_batch_enrichment_scores", ref, args.ref, "ref")] if ref else []) + [
        ("rank_scores (same weights as SAELens)", core, args.ref, "core"),
        ("sw.enrichment end to end (incl. matmul)", ours, args.features, "ours")]
    for label, result, n, key in rows:
        print(f"{label:42s} {n:8,d} {result['seconds']:8.2f} {per[key]:8.2f} {base / per[key]:7.1f}x "
              f"{per_cpu[key]:11.2f} {base_cpu / per_cpu[key]:7.1f}x {result['peak_rss_mb']:11.0f}")
    n_pairs = args.ref * len(SETS)
    print(f"\nscores of the {args.ref} shared features x {len(SETS)} sets ({n_pairs:,} pairs):")
    print(f"  vs our float64 walk with equal weights as one step: rank_scores {np.abs(core_es - exact).max():.1e}, "
          f"sw.enrichment {np.abs(ours_es - exact).max():.1e}")
    if saelens_es is not None:
        exact_ref = np.abs(saelens_es - exact)
        off = np.abs(ours_es - saelens_es) > 1e-5
        saelens_off = exact_ref[off & ~at_tie]
        print(f"  vs SAELens: max |difference| {np.abs(ours_es - saelens_es).max():.1e}; {off.sum()} pairs differ by "
              f"more than 1e-5: {int((off & at_tie).sum())} with SAELens's extreme inside a group of exactly equal "
              f"float32 weights (its unstable sort orders members and non-members there arbitrarily), and "
              f"{int((off & ~at_tie).sum())} where SAELens's own float32 running sum is off the exact value by "
              f"{saelens_off.max() if saelens_off.size else 0:.1e}; SAELens vs the exact walk where its extreme is "
              f"not at a tie: {exact_ref[~at_tie].max():.1e}")


if __name__ == "__main__":
    main()
