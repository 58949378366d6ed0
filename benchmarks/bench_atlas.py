"""Activation collection (``sw.collect_activations``): speed, bytes that cross, memory, and SAEDashboard.

Parts (all ratios against a baseline measured in the same run):

- ``speed``: a GPT-2-small-shaped random model (transformers ``GPT2Config()`` defaults: 12 x 768,
  vocab 50257; the tiny test BPE tokenizer), a JumpReLU SAE of 24,576 features on
  resid_pre[8] (random decoder; thresholds set so that about 64 features fire per token, like
  trained SAEs). ``sw.collect_activations`` end to end (tokenising, every batch's trace with
  the SAE encoding and the top-k bookkeeping inside it, merging, the final tables) against a
  bare nnsight trace of the same batches that saves the hook's residual stream.
- ``bytes``: what a remote run sends back per token (the serialised per-batch results) against
  the residual stream it would otherwise ship (float32), batch by batch.
- ``rss``: peak RSS of a collection on the model organism as its corpus grows 1x, 10x, 100x
  (each size in a fresh process).
- ``saedashboard``: SAEDashboard's feature-data generation (``SaeVisRunner``, installed from
  PyPI into a separate venv: ``--saedashboard-python``) on a TransformerLens model built from
  the same random GPT-2 weights, for the same features and tokens, against ours on those
  features (the SAE cut to them) and on all features.

    python benchmarks/bench_atlas.py [--parts speed,bytes,rss,saedashboard] [--tokens 16384] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import saewidgets as sw  # noqa: E402
from tiny_models import tiny_tokenizer  # noqa: E402

LAYER = 8
D_SAE = 24576
L0 = 64


# -- the GPT-2-small-shaped setup -------------------------------------------------------------
def gpt2_setup(d_sae: int = D_SAE, seed: int = 0):
    import transformers as tf

    torch.manual_seed(seed)
    tok = tiny_tokenizer()
    hf = tf.GPT2LMHeadModel(tf.GPT2Config()).eval()
    model = sw.load_model(hf, tokenizer=tok)
    g = torch.Generator().manual_seed(seed)
    W_dec = torch.randn(d_sae, 768, generator=g)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    sae = sw.SAE(W_dec.T.clone(), W_dec, torch.zeros(d_sae), torch.zeros(768), architecture="jumprelu",
                 threshold=torch.zeros(d_sae), hook=sw.HookPoint(LAYER, "resid_pre", f"blocks.{LAYER}.hook_resid_pre"),
                 metadata={"prepend_bos": True, "context_size": 128})
    calibrate(model, sae)
    return hf, model, sae


def calibrate(model, sae, l0: int = L0) -> None:
    """Per-feature thresholds so that about ``l0`` features fire per token (on a calibration text)."""
    from saewidgets.engine import Read, Row, trace

    text = " ".join(sw.organism_corpus(40))
    ids = model.tokenizer(text)["input_ids"][:512]
    rows = [Row([0, *ids[i:i + 127]]) for i in range(0, len(ids), 127)]
    h = trace(model, rows, [Read("h", LAYER, positions="all")]).reads["h"].reshape(-1, 768)
    pre = sae.encode_pre(h)
    quantile = 1 - l0 / sae.d_sae  # each feature fires on its top (l0 / d_sae) share of tokens
    sae.threshold.data = pre.sort(dim=0).values[int(quantile * pre.shape[0])].clamp_min(1e-3).contiguous()


def corpus(n_tokens: int, tok) -> list[str]:
    docs, total = [], 0
    for doc in sw.organism_corpus():
        docs.append(doc)
        total += len(tok(doc)["input_ids"])
        if total >= n_tokens:
            return docs
    return docs


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def bare_trace(model, batches, stop: bool = False) -> None:
    """What a bare collection loop costs: one nnsight trace per batch saving the hook's residual
    (``stop``: ending the pass there, as the collection does)."""
    from saewidgets.atlas.collect import padded

    block = model.transformer.h[LAYER]
    for batch in batches:
        ids, _ = padded(batch, 0)
        mask = torch.zeros_like(ids)
        for r, c in enumerate(batch):
            mask[r, ids.shape[1] - len(c.ids):] = 1
        position_ids = (mask.cumsum(-1) - 1).clamp_min(0)
        if stop:
            with torch.no_grad(), model.trace({"input_ids": ids, "attention_mask": mask,
                                               "position_ids": position_ids}) as tracer:
                h = block.input.save()
                tracer.stop()
        else:
            with torch.no_grad(), model.trace({"input_ids": ids, "attention_mask": mask, "position_ids": position_ids}):
                h = block.input.save()
        del h


def part_speed(args) -> list[tuple]:
    from saewidgets.atlas import collect as C
    from saewidgets.atlas.corpus import open_corpus

    hf, model, sae = gpt2_setup()
    docs = corpus(args.tokens, model.tokenizer)
    binding = sw.bind(model, sae)
    settings = C._settings(binding, 20, (10, 5), 128, 10, 3)
    batches = list(C._batches(open_corpus(docs), binding, settings, 0, args.batch_size))
    n_tokens = sum(len(c.ids) - c.bos for b in batches for c in b)
    bare_trace(model, batches[:1])  # warm up
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            bw, bc, _ = timed(lambda: bare_trace(model, batches))
            sw_, sc, _ = timed(lambda: bare_trace(model, batches, stop=True))
            path = Path(tmp) / f"speed-{repeat}.sqlite"
            ow, oc, atlas = timed(lambda path=path: sw.collect_activations(
                model, sae, docs, path, batch_size=args.batch_size, seq_len=128, logit_stats=False,
                checkpoint_every=1e9, progress=False))
            rows.append((bw, bc, ow, oc, atlas.n_tokens, sw_, sc))
    bw, bc, ow, oc, counted, sw_, sc = min(rows, key=lambda r: r[2] / r[0])
    print(f"\nspeed: {len(batches)} batches of {args.batch_size} rows x 128 tokens, {n_tokens:,} tokens "
          f"({counted:,} counted), SAE {sae.d_sae} features (JumpReLU, L0 ~ {L0}) at resid_pre[{LAYER}]; "
          f"best of {args.repeats}")
    print("| run | wall s | cpu s | tokens/s | x bare (wall) | x bare (cpu) |\n|---|---:|---:|---:|---:|---:|")
    print(f"| bare nnsight trace, same batches (saves resid_pre[{LAYER}]) | {bw:.1f} | {bc:.1f} | {n_tokens / bw:,.0f} | 1.00 | 1.00 |")
    print(f"| bare nnsight trace stopped after resid_pre[{LAYER}] (tracer.stop) | {sw_:.1f} | {sc:.1f} | "
          f"{n_tokens / sw_:,.0f} | {sw_ / bw:.2f} | {sc / bc:.2f} |")
    print(f"| sw.collect_activations (all {sae.d_sae} features) | {ow:.1f} | {oc:.1f} | {n_tokens / ow:,.0f} | "
          f"**{ow / bw:.2f}** | {oc / bc:.2f} |")
    print(f"collection vs the stopped bare trace: {ow / sw_:.2f}x wall, {oc / sc:.2f}x cpu")
    return rows


def part_bytes(args) -> None:
    import io

    from saewidgets.atlas import collect as C
    from saewidgets.atlas.corpus import open_corpus
    from saewidgets.atlas.state import State
    from saewidgets.atlas.summary import FIELDS, BatchSummary
    from saewidgets.engine import Read, Row, trace

    hf, model, sae = gpt2_setup()
    docs = corpus(args.tokens, model.tokenizer)
    binding = sw.bind(model, sae)
    settings = C._settings(binding, 20, (10, 5), 128, 10, 3)
    state = State(sae.d_sae, settings)
    print(f"\nbytes per counted token sent back (torch.save of the per-batch results) vs the residual "
          f"stream (float32, d_model {binding.d_model}: {4 * binding.d_model} bytes per token)")
    print("| batch | tokens | results bytes/token | residual bytes/token | ratio |\n|---:|---:|---:|---:|---:|")
    for i, batch in enumerate(C._batches(open_corpus(docs), binding, settings, 0, args.batch_size)):
        ids, counted = C.padded(batch, 0)
        summary = BatchSummary(sae, torch.tensor([c.index for c in batch]), ids, counted, state.ranges,
                               state.top_threshold(), state.q_threshold().float(), settings.k, settings.before,
                               settings.after, settings.groups, settings.bins, settings.pairs, binding.vocab_size)
        read = Read("s", LAYER, positions="all", fn=summary)
        out = trace(model, [Row(list(c.ids)) for c in batch], [read]).reads["s"]
        n = int(counted.sum())
        buffer = io.BytesIO()
        torch.save(tuple(out), buffer)
        resid = 4 * binding.d_model * ids.numel() / n  # the padded batch a bare read returns
        if i < 3 or i % 4 == 0:
            print(f"| {i} | {n} | {buffer.tell() / n:,.0f} | {resid:,.0f} | {buffer.tell() / n / resid:.3f} |")
        C.merge(state, dict(zip(FIELDS, out)), batch, ids, counted, settings)


RSS_CHILD = """
import json, resource, sys, time, torch
import saewidgets as sw
torch.set_num_threads(1)
copies, path = int(sys.argv[1]), sys.argv[2]
model, sae = sw.organism()
docs = sw.organism_corpus(400) * copies
t = time.perf_counter()
atlas = sw.collect_activations(model, sae, docs, path, progress=False, logit_stats=False, checkpoint_every=60)
# VmHWM: this process's own peak (ru_maxrss would keep the parent's peak across exec)
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"tokens": atlas.n_tokens, "seconds": time.perf_counter() - t, "peak_rss_mb": hwm / 1024}))
"""


def part_rss(args) -> None:
    print("\npeak RSS of a collection on the organism (400 documents x copies, a fresh process each)")
    print("| corpus | tokens | seconds | peak RSS MB | x 1x RSS |\n|---|---:|---:|---:|---:|")
    base = None
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "child.py"
        script.write_text(RSS_CHILD)
        for copies in (1, 10, 100):
            out = subprocess.run([sys.executable, str(script), str(copies), str(Path(tmp) / f"{copies}.sqlite")],
                                 capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
            if out.returncode:
                raise RuntimeError(out.stderr[-2000:])
            rec = json.loads(out.stdout.strip().splitlines()[-1])
            base = base or rec["peak_rss_mb"]
            print(f"| {copies}x | {rec['tokens']:,} | {rec['seconds']:.0f} | {rec['peak_rss_mb']:.0f} | "
                  f"{rec['peak_rss_mb'] / base:.2f} |")


SAEDASH_CHILD = r"""
import json, sys, time, torch
from transformers import GPT2Config, GPT2LMHeadModel
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights
from sae_dashboard.sae_vis_data import SaeVisConfig
from sae_dashboard.sae_vis_runner import SaeVisRunner
spec = json.load(open(sys.argv[1]))
torch.set_num_threads(spec["threads"])
torch.set_flush_denormal(True)
hf = GPT2LMHeadModel(GPT2Config())
hf.load_state_dict(torch.load(spec["model"], weights_only=True))
hf.eval()
cfg = HookedTransformerConfig(n_layers=12, d_model=768, d_head=64, n_heads=12, d_mlp=3072, n_ctx=1024, d_vocab=50257,
                              act_fn="gelu_new", normalization_type="LN", positional_embedding_type="standard")
model = HookedTransformer(cfg)
model.load_state_dict(convert_gpt2_weights(hf, cfg), strict=False)
model.eval()
w = torch.load(spec["sae"], weights_only=True)
from sae_lens import JumpReLUSAE, JumpReLUSAEConfig
sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=768, d_sae=w["W_enc"].shape[1], dtype="float32", device="cpu",
                                     apply_b_dec_to_input=False, normalize_activations="none"))
sae.load_state_dict(w, strict=False)
sae.cfg.metadata.hook_name = spec["hook"]
tokens = torch.load(spec["tokens"], weights_only=True)
config = SaeVisConfig(hook_point=spec["hook"], features=spec["features"], minibatch_size_tokens=spec["minibatch"],
                      minibatch_size_features=len(spec["features"]), device="cpu", dtype="float32", verbose=False)
t = time.perf_counter(); c = time.process_time()
data = SaeVisRunner(config).run(encoder=sae, model=model, tokens=tokens)
print(json.dumps({"seconds": time.perf_counter() - t, "cpu": time.process_time() - c,
                  "features": len(data.feature_data_dict)}))
"""


def part_saedashboard(args) -> None:
    python = args.saedashboard_python
    if not python or not Path(python).exists():
        print("\nsaedashboard: skipped (give --saedashboard-python, a venv where `pip install sae-dashboard` worked)")
        return
    from saewidgets.atlas import collect as C
    from saewidgets.atlas.corpus import open_corpus

    hf, model, sae = gpt2_setup()
    docs = corpus(args.dash_tokens, model.tokenizer)
    binding = sw.bind(model, sae)
    settings = C._settings(binding, 20, (10, 5), 128, 10, 3)
    batches = list(C._batches(open_corpus(docs), binding, settings, 0, 1))
    rows = [list(b[0].ids) for b in batches if len(b[0].ids) == 128]  # SAEDashboard wants full rows
    tokens = torch.tensor(rows)
    n = int(tokens.numel())
    features = list(range(args.dash_features))
    cut = sw.SAE(sae.W_enc[:, features].clone(), sae.W_dec[features].clone(), sae.b_enc[features].clone(),
                 sae.b_dec.clone(), architecture="jumprelu", threshold=sae.threshold[features].clone(), hook=sae.hook,
                 metadata=sae.metadata)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        torch.save(hf.state_dict(), tmp / "model.pt")
        torch.save({k: v for k, v in cut.state_tensors().items()}, tmp / "sae.pt")
        torch.save(tokens, tmp / "tokens.pt")
        (tmp / "spec.json").write_text(json.dumps({
            "model": str(tmp / "model.pt"), "sae": str(tmp / "sae.pt"), "tokens": str(tmp / "tokens.pt"),
            "hook": f"blocks.{LAYER}.hook_resid_pre", "features": features, "minibatch": 128 * args.batch_size,
            "threads": torch.get_num_threads()}))
        (tmp / "child.py").write_text(SAEDASH_CHILD)
        out = subprocess.run([python, str(tmp / "child.py"), str(tmp / "spec.json")], capture_output=True, text=True)
        if out.returncode:
            print("\nsaedashboard: failed:\n" + out.stderr[-3000:])
            return
        dash = json.loads(out.stdout.strip().splitlines()[-1])
        corpus_rows = [model.tokenizer.decode(r[1:]) for r in rows]  # the same token rows, BOS re-added
        ours_cut = timed(lambda: sw.collect_activations(model, cut, corpus_rows, tmp / "cut.sqlite", seq_len=128,
                                                        batch_size=args.batch_size, logit_stats=True,
                                                        checkpoint_every=1e9, progress=False))
        ours_all = timed(lambda: sw.collect_activations(model, sae, corpus_rows, tmp / "all.sqlite", seq_len=128,
                                                        batch_size=args.batch_size, logit_stats=False,
                                                        checkpoint_every=1e9, progress=False))
    print(f"\nsaedashboard: {len(rows)} rows x 128 = {n:,} tokens, the same token rows for both; "
          f"features 0..{len(features) - 1}")
    print("| run | wall s | cpu s | x SAEDashboard (wall) |\n|---|---:|---:|---:|")
    print(f"| SAEDashboard SaeVisRunner, {len(features)} features | {dash['seconds']:.1f} | {dash['cpu']:.1f} | 1.00 |")
    print(f"| sw.collect_activations, the same {len(features)} features (+ logit stats) | {ours_cut[0]:.1f} | "
          f"{ours_cut[1]:.1f} | **{ours_cut[0] / dash['seconds']:.2f}** |")
    print(f"| sw.collect_activations, all {sae.d_sae} features | {ours_all[0]:.1f} | {ours_all[1]:.1f} | "
          f"{ours_all[0] / dash['seconds']:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="speed,bytes,rss,saedashboard")
    parser.add_argument("--tokens", type=int, default=16384)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--saedashboard-python", default="/tmp/saedash/bin/python")
    parser.add_argument("--dash-tokens", type=int, default=8192)
    parser.add_argument("--dash-features", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # random weights: keep x86 off slow denormal floats (both sides)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__} ({args.threads} threads), load average {os.getloadavg()[0]:.1f}")
    parts = args.parts.split(",")
    for name in parts:
        globals()[f"part_{name}"](args)
    print(f"\npeak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
