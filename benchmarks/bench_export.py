"""Export: snapshot time (batched grid vs one steer call per scale) and the size of what is saved.

python benchmarks/bench_export.py [--quick]

Prints two tables: the time to precompute a grid of steered generations, batched in one
nnsight generation (``explorer.snapshot``) against the baseline of one ``sw.steer`` call
per (feature, scale) as the live slider would make them (checking that both give the same
tokens); and the size of the saved artefacts: the snapshot (packed arrays against the same
numbers as JSON), standalone pages with 1 and 8 features, a gallery, chart images and an
offline nbconvert page.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import saewidgets as sw  # noqa: E402
from saewidgets.export.packing import unpack  # noqa: E402
from saewidgets.export.saved import human_size  # noqa: E402
from saewidgets.export.snapshot import ExplorerReader, _steered_generations, symlog_grid  # noqa: E402


def build(quick: bool):
    import transformers as tf
    from tiny_models import random_sae, tiny_tokenizer

    torch.manual_seed(0)
    tok = tiny_tokenizer()
    layers, width = (4, 256) if quick else (12, 768)
    config = tf.GPT2Config(n_layer=layers, n_embd=width, n_head=8, vocab_size=len(tok), n_positions=256,
                           bos_token_id=0, eos_token_id=0, pad_token_id=0)
    model = sw.load_model(tf.GPT2LMHeadModel(config).eval(), tokenizer=tok)
    sae = random_sae(width, 1024, layer=layers // 2)
    return sw.bind(model, sae), f"GPT-2-shaped random model, {layers} layers x {width}, vocab {len(tok)}; SAE 1024 features"


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a 4-layer model, fewer scales")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    binding, what = build(args.quick)
    n_tokens, n_scales = (12, 5) if args.quick else (24, 9)
    explorer = sw.FeatureExplorer(binding, feature=3, prompt="The quick brown fox", max_new_tokens=n_tokens)
    explorer.wait()
    features = [3, 17]
    grids = {f: symlog_grid(explorer.scale_range, n_scales) for f in features}
    rows = sum(len(g) for g in grids.values())
    reader = ExplorerReader(explorer)

    batched_s, generations = timed(lambda: _steered_generations(explorer, reader, grids, 64, False))

    def sequential():
        out = {}
        for f, grid in grids.items():
            for scale in grid:
                result = sw.steer(binding, "The quick brown fox", features={f: scale}, max_new_tokens=n_tokens,
                                  progress=False)
                out[(f, scale)] = [reader.token_string(t) for t in result.steered_ids]
        return out

    sequential_s, reference = timed(sequential)
    same = sum(generations[f][i].tokens == reference[(f, s)] for f, g in grids.items() for i, s in enumerate(g))
    print(f"\n{what}; {len(features)} features x {n_scales} scales = {rows} steered rows, {n_tokens} new tokens, greedy")
    print(f"identical token sequences: {same}/{rows}\n")
    print("| run | calls | wall s | speed-up vs sequential |\n|---|---:|---:|---:|")
    print(f"| sequential: one sw.steer per (feature, scale) | {rows} | {sequential_s:.2f} | 1.00 |")
    print(f"| batched: snapshot grid, one generation | 1 | {batched_s:.2f} | **{sequential_s / batched_s:.2f}** |")

    snap_s, summary = timed(lambda: explorer.snapshot(features=features, n_scales=n_scales, progress=False,
                                                       self_explain=dict(max_new_tokens=8)))
    eight = list(range(3, 11))
    snap8_s, summary8 = timed(lambda: explorer.snapshot(features=eight, n_scales=n_scales, progress=False,
                                                         self_explain=False))
    as_json = len(json.dumps(unpack(explorer.precomputed, explorer.precomputed_data), separators=(",", ":")))
    packed = summary8.json_bytes + 4 * ((summary8.data_bytes + 2) // 3)  # base64 of the buffer
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        eight_s, many = timed(lambda: explorer.save_html(tmp / "eight.html", features=eight))
        explorer.snapshot(features=[3], n_scales=n_scales, progress=False, self_explain=False)
        one_s, one = timed(lambda: explorer.save_html(tmp / "one.html", features=[3]))
        explorer.snapshot(features=eight, n_scales=n_scales, progress=False, self_explain=False)
        gallery_s, gallery = timed(lambda: sw.export.save_gallery(explorer, eight[:4], tmp / "gallery.html"))
        png_s, png = timed(lambda: explorer.save_chart(tmp / "h.png"))
        svg_s, svg = timed(lambda: explorer.save_chart(tmp / "h.svg"))
    print(f"\nsnapshot, 2 features with self-explanation: {snap_s:.2f} s ({summary});"
          f" 8 features without: {snap8_s:.2f} s\n")
    print("| artefact | size | parts | write s |\n|---|---:|---|---:|")
    print(f"| snapshot of 8 features as saved state (JSON + base64 buffer) | {human_size(packed)} | "
          f"the same numbers as plain JSON: {human_size(as_json)} (x{as_json / packed:.2f}) | |")
    for name, saved, secs in (("standalone HTML, 1 feature", one, one_s), ("standalone HTML, 8 features", many, eight_s),
                              ("gallery, 4 features", gallery, gallery_s), ("histogram PNG (2x)", png, png_s),
                              ("histogram SVG", svg, svg_s)):
        parts = ", ".join(f"{k} {human_size(v)}" for k, v in saved.parts.items())
        print(f"| {name} | {human_size(saved.bytes)} | {parts} | {secs:.2f} |")
    explorer.close()


if __name__ == "__main__":
    main()
