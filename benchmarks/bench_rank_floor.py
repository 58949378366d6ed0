"""Benchmark: what the one-pass logit-lens table costs, part by part, against the bare matmul.

    python benchmarks/bench_rank_floor.py                 # 2,048 features, 1 thread, 5 repeats
    python benchmarks/bench_rank_floor.py --features 4096 --threads 2
    python benchmarks/bench_rank_floor.py --against 919a7b6   # also score_rows as of that commit

Same GPT-2-small-shaped model, random SAE and 12 default token classes as
bench_logit_stats.py (``sw.logit_lens_table``). Every part runs on the same features,
interleaved with the others in each repeat (median wall and process-CPU time). Each
part is a real step of the table, run alone:

* the bare chunked ``W_dec @ W_U`` (a fresh output per chunk): the baseline;
* the same matmul into one reused buffer (what ``stream`` does);
* the statistics of those chunks (moments, top and bottom tokens);
* the one sort of each row: ``-w`` widened to float64 with the token id in its low bits;
* the inverse of that order (each token's rank);
* each class's member ranks, gathered and sorted (the least per-class work an exact
  score needs once the order is known);
* ``score_rows`` whole (everything above from the sort on, plus the walk, ties and scores);
* ``sw.logit_lens_table`` end to end;
* with ``--against REV``: ``score_rows`` of ``saewidgets/logit_lens/ranks.py`` as of git
  revision REV, on the same rows, after checking that it returns the same scores.

The floor printed at the end is the buffered matmul + statistics + the sort + the
per-class gather and sort: what any exact design built from numpy's sort and gather
pays before it has computed a single score.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_logit_stats import VOCAB, build_binding  # noqa: E402
from timing import measure  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def kernel_at(revision: str):
    """The ``saewidgets.logit_lens.ranks`` module of a git revision, imported from a temp file."""
    source = subprocess.run(["git", "show", f"{revision}:saewidgets/logit_lens/ranks.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "ranks_at_revision.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("ranks_at_revision", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--features", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--against", metavar="REV", help="also time score_rows as of this git revision")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    import saewidgets as sw
    from saewidgets.logit_lens.core import auto_chunk, feature_spec, stream, unembedding, worker_pool
    from saewidgets.logit_lens.enrichment import token_sets
    from saewidgets.logit_lens.lens import StatsAccumulator
    from saewidgets.logit_lens.ranks import ID_BITS, RANK_ROWS, TokenSets, score_rows

    binding = build_binding()
    n = args.features
    spec = feature_spec(binding, range(n))
    lens = unembedding(binding)
    chunk = auto_chunk(VOCAB, n, None)
    names, members = token_sets(binding, None, VOCAB)
    sets = TokenSets(members, VOCAB)
    W_dec, W_U = binding.sae.W_dec.detach(), binding.unembedding().detach()
    with torch.no_grad():
        weights = (W_dec[:n] @ lens.W_U).numpy()  # the rows every rank step below works on
    blocks = [weights[i : i + RANK_ROWS] for i in range(0, n, RANK_ROWS)]
    packed = np.empty((RANK_ROWS, VOCAB))
    ids = np.empty((RANK_ROWS, VOCAB), dtype=np.int64)
    ranks = np.empty((RANK_ROWS, VOCAB), dtype=np.uint16)
    ranks_t, ids_t = torch.from_numpy(ranks.view(np.int16)), torch.from_numpy(ids)
    arange_t = torch.from_numpy(np.arange(VOCAB, dtype=np.uint16).view(np.int16)).expand(RANK_ROWS, VOCAB)
    token_ids = np.arange(VOCAB, dtype=np.int64)

    def bare() -> None:
        with torch.no_grad():
            for i in range(0, n, chunk):
                W_dec[i : i + chunk] @ W_U

    def buffered() -> None:
        for _ in stream(binding, spec, lens, chunk, progress=False):
            pass

    def statistics() -> None:
        with worker_pool(1) as pool:
            acc = StatsAccumulator(n, VOCAB, 10, lens.device, spec.ids, pool)
            for part in stream(binding, spec, lens, chunk, progress=False):
                acc.add(part)

    def pack_and_sort(block: np.ndarray) -> np.ndarray:
        rows = block.shape[0]
        out = packed[:rows]
        np.subtract(0.0, block, out=out)
        np.bitwise_or(out.view(np.int64), token_ids, out=out.view(np.int64))
        out.sort(axis=1)
        return out

    def sort_only() -> None:
        for block in blocks:
            pack_and_sort(block)

    sorted_blocks = [pack_and_sort(block).copy() for block in blocks]

    def invert() -> None:
        for block in sorted_blocks:
            rows = block.shape[0]
            np.bitwise_and(block.view(np.int64), 2**ID_BITS - 1, out=ids[:rows])
            ranks_t[:rows].scatter_(1, ids_t[:rows], arange_t[:rows])

    def member_positions() -> None:
        for block in blocks:
            rows = block.shape[0]
            for side in sets.sides:
                positions = np.take(ranks[:rows], side.ids, axis=1)
                positions.sort(axis=1)

    def kernel() -> None:
        for block in blocks:
            score_rows(block, sets, with_u=False)

    def table() -> None:
        sw.logit_lens_table(binding, features=range(n), progress=False, workers=1)

    old_parts: dict[str, Callable[[], object]] = {}
    if args.against:
        old = kernel_at(args.against)
        old_sets = old.TokenSets(members, VOCAB)
        for block in blocks[:4]:
            mine, theirs = score_rows(block, sets, with_u=False), old.score_rows(block, old_sets, with_u=False)
            assert all(np.array_equal(a, b) for a, b in zip(mine, theirs)), "the two kernels disagree"

        def old_kernel() -> None:
            for block in blocks:
                old.score_rows(block, old_sets, with_u=False)

        old_parts[f"score_rows as of {args.against}"] = old_kernel
    parts: dict[str, Callable[[], object]] = {
        "bare chunked W_dec @ W_U (baseline)": bare,
        "matmul into one buffer (stream)": buffered,
        "stream + statistics (logit_stats' pass)": statistics,
        "sort of every row (packed float64)": sort_only,
        "inverse order (token ranks)": invert,
        "12 classes: member ranks gathered + sorted": member_positions,
        "score_rows whole (sort to scores)": kernel,
        **old_parts,
        "sw.logit_lens_table end to end": table,
    }
    times = measure(parts, args.repeats, "cpu")
    base = times["bare chunked W_dec @ W_U (baseline)"]
    print(f"logit-lens table, part by part: {n:,} features x {VOCAB:,} tokens, 12 classes "
          f"({sum(side.ids.size for side in sets.sides):,} member ranks per feature), {args.threads} thread(s), "
          f"median of {args.repeats} interleaved repeats; load average {os.getloadavg()[0]:.1f}\n")
    print(f"{'part':45s} {'wall ms/feat':>12s} {'ratio':>7s} {'cpu ms/feat':>12s} {'ratio':>7s}")
    for name, t in times.items():
        print(f"{name:45s} {t['wall'] / n * 1e3:12.3f} {t['wall'] / base['wall']:6.2f}x "
              f"{t['cpu'] / n * 1e3:12.3f} {t['cpu'] / base['cpu']:6.2f}x")
    floor = {key: (times["stream + statistics (logit_stats' pass)"][key] + times["sort of every row (packed float64)"][key]
                   + times["12 classes: member ranks gathered + sorted"][key]) for key in ("wall", "cpu")}
    print(f"\nfloor (stream + statistics + sort + class member ranks): {floor['wall'] / base['wall']:.2f}x wall, "
          f"{floor['cpu'] / base['cpu']:.2f}x cpu of the bare matmul (target for the whole table: 1.5x)")


if __name__ == "__main__":
    main()
