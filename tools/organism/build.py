"""Build the model organism from scratch: `python -m tools.organism.build --out DIR`.

Corpus -> BPE tokenizer -> GPT-2 -> residual activations -> TopK SAE -> evaluation ->
ground_truth.json and REPORT.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import GPT2LMHeadModel

from .corpus import generate_corpus
from .evaluate import definition_accuracy, icl_table, lm_loss, steering_table
from .features import ConceptLabels, best_features, firing, residuals
from .icl import TASKS
from .report import write_report
from .tokenizer import EOT, multi_token_words, to_transformers, train_tokenizer
from .stream import corpus_windows, token_stream
from .train_lm import LMConfig, make_model, train_lm
from .sae import TopKSAE
from .train_sae import SAEConfig, train_sae
from .vocab import CONCEPTS, HELD_OUT

from saewidgets.model_organism.ground_truth import CORPUS_FILE, DATA_DIR  # noqa: E402  (the shipped build)
LAYER = 2
HOOK_NAME = f"blocks.{LAYER}.hook_resid_pre"
MODEL_NAME = "saewidgets-organism"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_lm(out: Path, seed: int, cfg: LMConfig) -> tuple[GPT2LMHeadModel, Tokenizer, dict]:
    """Corpus, tokenizer and LM; saved under out/model."""
    start = time.time()
    n_docs = cfg.steps * cfg.batch * cfg.n_ctx // 25
    docs = generate_corpus(n_docs, seed)
    tok = train_tokenizer(docs[:50_000], vocab_size=4096)
    stream = token_stream(docs, tok)
    seed_everything(seed)
    model = make_model(tok.get_vocab_size(), tok.token_to_id(EOT), cfg)
    losses = train_lm(model, stream, cfg, seed)
    model.save_pretrained(out / "model")
    to_transformers(tok).save_pretrained(out / "model")
    info = {"seconds_lm": time.time() - start, "corpus_docs": n_docs, "corpus_tokens": len(stream),
            "vocab_size": tok.get_vocab_size(),
            "final_train_loss": sum(losses[-50:]) / 50}
    return model, tok, info


def load_lm(out: Path) -> tuple[GPT2LMHeadModel, Tokenizer]:
    """Reload a previously built LM (for iterating on the SAE)."""
    model = GPT2LMHeadModel.from_pretrained(out / "model").eval()
    return model, Tokenizer.from_file(str(out / "model" / "tokenizer.json"))


def train_and_select_sae(model: GPT2LMHeadModel, tok: Tokenizer, acts: torch.Tensor, cfg: SAEConfig,
                         labels: ConceptLabels, seed: int, n_seeds: int,
                         n_ctx: int) -> tuple[TopKSAE, list[dict]]:
    """Train the SAE with `n_seeds` seeds; keep the one whose worst concept F1 is highest on a
    selection sample (its own corpus seed, disjoint from the report's evaluation sample)."""
    sel_acts, sel_ids = residuals(model, corpus_windows(seed + 5, 300, tok, n_ctx), LAYER)
    best, rows = None, []
    for s in range(seed, seed + n_seeds):
        sae = train_sae(acts, cfg, s, desc=f"train SAE (seed {s - seed + 1}/{n_seeds})")
        f1 = best_features(firing(sae.encode, sel_acts), sel_ids, labels).f1
        rows.append({"seed": s, "min_f1": float(f1.min()), "mean_f1": float(f1.mean())})
        if best is None or rows[-1]["min_f1"] > best[1]:
            best = (sae, rows[-1]["min_f1"])
    return best[0], rows


def build(out: Path, seed: int, lm_cfg: LMConfig, sae_cfg: SAEConfig, reuse_lm: bool = False,
          threads: int = 1, sae_seeds: int = 3) -> dict:
    """Run the whole pipeline; returns the ground-truth record."""
    start = time.time()
    torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    if reuse_lm:
        (model, tok), lm_info = load_lm(out), json.loads((out / "lm_info.json").read_text())
        lm_info["seconds_lm_reused"] = lm_info.pop("seconds_lm", 0.0)
    else:
        model, tok, lm_info = build_lm(out, seed, lm_cfg)
        (out / "lm_info.json").write_text(json.dumps(lm_info, indent=2))
    lm_time = time.time() - start + lm_info.get("seconds_lm_reused", 0.0)

    acts, _ = residuals(model, corpus_windows(seed + 1, 2500, tok, lm_cfg.n_ctx), LAYER)
    sae_cfg.extra_cfg = {"hook_name": HOOK_NAME, "hook_layer": LAYER, "model_name": MODEL_NAME,
                         "context_size": lm_cfg.n_ctx, "prepend_bos": True}
    labels = ConceptLabels.from_tokenizer(tok)
    sae, selection = train_and_select_sae(model, tok, acts, sae_cfg, labels, seed, sae_seeds, lm_cfg.n_ctx)
    sae.save(out / "sae")

    eval_windows = corpus_windows(seed + 2, 400, tok, lm_cfg.n_ctx)
    val_acts, val_ids = residuals(model, eval_windows, LAYER)
    with torch.no_grad():
        fvu = float(((sae(val_acts) - val_acts) ** 2).sum() / ((val_acts - val_acts.mean(0)) ** 2).sum())
    features = best_features(firing(sae.encode, val_acts), val_ids, labels)
    icl = icl_table(model, tok, TASKS, shots=(0, 3, 5), n_prompts=40, seed=seed + 3)
    def_acc, completions = definition_accuracy(model, tok, HELD_OUT)
    train_words = {c: [w for w in ws if w not in HELD_OUT[c]] for c, ws in CONCEPTS.items()}
    def_acc_train, _ = definition_accuracy(model, tok, train_words)

    record = {
        "model_name": MODEL_NAME, "layer": LAYER, "hook_name": HOOK_NAME, "seed": seed,
        "concepts": CONCEPTS, "held_out": HELD_OUT, "concept_token_ids": labels.space,
        "concept_token_ids_bare": labels.bare, "category_noun_ids": labels.nouns,
        "features": features.to_dict(orient="records"),
        "icl_tasks": {n: [list(p) for p in t.pairs] for n, t in TASKS.items()},
        "metrics": {
            "lm_loss_held_out": lm_loss(model, eval_windows),
            **{k: v for k, v in lm_info.items() if not k.startswith("seconds")},
            "sae_fvu": fvu, "sae_l0": sae.k, "sae_d_sae": sae.d_sae, "sae_selection": selection,
            "icl_accuracy": icl, "definition_accuracy_held_out": def_acc,
            "definition_accuracy_train": def_acc_train, "definition_completions": completions,
            "multi_token_concept_words": multi_token_words(tok),
        },
        "build": {"seconds_total": None, "seconds_lm": lm_time, "lm_reused": reuse_lm,
                  "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
                             f"{torch.get_num_threads()} torch threads, torch {torch.__version__}",
                  "lm_config": asdict(lm_cfg), "sae_config": {k: v for k, v in asdict(sae_cfg).items()
                                                              if k != "extra_cfg"}},
    }
    add_activation_stats(record, sae, val_acts)
    record["metrics"]["steering"] = steering_table(model, to_transformers(tok), sae.W_dec, record["features"],
                                                   CONCEPTS, LAYER)
    record["build"]["seconds_total"] = time.time() - start + lm_info.get("seconds_lm_reused", 0.0)
    (out / "ground_truth.json").write_text(json.dumps(record, indent=1) + "\n")
    write_corpus_sample(out)
    record["metrics"]["self_explanation"] = write_self_explain_settings(out, record)
    (out / "ground_truth.json").write_text(json.dumps(record, indent=1) + "\n")
    write_report(record, out / "REPORT.md")
    return record


CORPUS_SAMPLE_SEED = 7  # not a training (0), selection (5) or report (2) seed
CORPUS_SAMPLE_DOCS = 4000


def write_corpus_sample(out: Path) -> None:
    """Held-out documents shipped with the organism (``sw.organism_corpus()``): what the
    runtime uses for activation examples and layer maps, without the generator."""
    import gzip

    docs = generate_corpus(CORPUS_SAMPLE_DOCS, CORPUS_SAMPLE_SEED)
    lines = "".join(json.dumps(doc) + "\n" for doc in docs)
    # mtime=0: the same documents give the same bytes
    (out / CORPUS_FILE).write_bytes(gzip.compress(lines.encode(), mtime=0))


LAYER_MAP_DOCS = 400  # of the shipped corpus sample
LAYER_MAP_TARGET = 0


def write_self_explain_settings(out: Path, record: dict) -> dict:
    """Fit the layer map (SAE hook -> block 0) that self-explanation needs on this shallow model, ship
    it as the SAE's default, and measure what it buys: concepts whose feature's chosen explanation
    names the concept, with the paper's method and with the map (default answers never count)."""
    import re

    import saewidgets as sw
    from saewidgets.model_organism.ground_truth import LAYER_MAP_FILE, organism_corpus

    from .vocab import CATEGORY_NOUN

    model = sw.load_model(out / "model")
    sae = sw.load_sae(out / "sae")
    layer_map = sw.fit_layer_map(model, sae, organism_corpus(LAYER_MAP_DOCS, out), LAYER_MAP_TARGET, progress=False)
    layer_map.save(out / LAYER_MAP_FILE)
    concepts = [row["concept"] for row in record["features"]]
    features = [row["feature"] for row in record["features"]]

    def named(text: str, concept: str) -> bool:
        words = set(re.findall(r"[a-z]+", text.lower()))
        return bool(words & {concept, CATEGORY_NOUN.get(concept, ("", concept))[1],
                             *(w.lower() for w in CONCEPTS[concept])})

    result: dict = {"layer_map": {"target": LAYER_MAP_TARGET, "documents": LAYER_MAP_DOCS, "r2": layer_map.r2,
                                  "n_tokens": layer_map.n_tokens}}
    for label, options in (("paper", {"defaults": False}), ("mapped", {"layer_map": layer_map})):
        df = sw.self_explain(model, sae, features=features, progress=False, **options)
        chosen = df.attrs["chosen_explanation"]
        result[label] = {"named": [c for c, f in zip(concepts, features) if named(chosen[f], c)],
                         "explanations": {c: chosen[f] for c, f in zip(concepts, features)}}
    return result


@torch.no_grad()
def add_activation_stats(record: dict, sae, acts: torch.Tensor) -> None:
    """Mean and max activation of each concept feature where it fires."""
    for row in record["features"]:
        a = sae.encode(acts)[:, row["feature"]]
        row["mean_act"] = float(a[a > 0].mean()) if (a > 0).any() else 0.0
        row["max_act"] = float(a.max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=LMConfig.steps, help="LM training steps")
    parser.add_argument("--sae-steps", type=int, default=SAEConfig.steps)
    parser.add_argument("--d-sae", type=int, default=SAEConfig.d_sae)
    parser.add_argument("--k", type=int, default=SAEConfig.k)
    parser.add_argument("--sae-seeds", type=int, default=3, help="SAEs trained; the best is kept")
    parser.add_argument("--reuse-lm", action="store_true", help="keep out/model, retrain the SAE")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    if args.sae_seeds < 1 or not 0 < args.k <= args.d_sae:
        parser.error(f"need --sae-seeds >= 1 and 0 < --k <= --d-sae (got {args.sae_seeds}, {args.k}, {args.d_sae})")
    prefixes = tuple(sorted({m for m in SAEConfig.prefixes if m < args.d_sae} | {args.d_sae}))
    record = build(args.out, args.seed, LMConfig(steps=args.steps),
                   SAEConfig(d_sae=args.d_sae, k=args.k, steps=args.sae_steps, prefixes=prefixes),
                   reuse_lm=args.reuse_lm, threads=args.threads, sae_seeds=args.sae_seeds)
    print(json.dumps({k: v for k, v in record["metrics"].items() if k != "definition_completions"},
                     indent=1))


if __name__ == "__main__":
    main()
