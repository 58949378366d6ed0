"""The built-in model organism: files, loading, ground truth, generation and steering (CPU, fast)."""

from __future__ import annotations

import json
import time

import pytest
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer

from saewidgets.model_organism import organism, organism_ground_truth, organism_raw
from tools.organism.evaluate import STEER_PROMPTS, STEER_SCALE, concept_fraction
from tools.organism.features import ConceptLabels, best_features, firing, residuals
from saewidgets.model_organism.ground_truth import MODEL_DIR, SAE_DIR
from tools.organism.sae import TopKSAE
from tools.references.steering_hooks import steered_generate
from tools.organism.stream import corpus_windows

torch.set_num_threads(2)

STEER_CONCEPTS = ["colour", "animal", "number", "food", "city", "emotion", "name", "profession", "vehicle",
                  "instrument"]


@pytest.fixture(scope="module")
def gt():
    return organism_ground_truth()


@pytest.fixture(scope="module")
def raw():
    return organism_raw()


@pytest.fixture(scope="module")
def ref_sae():
    return TopKSAE.load(SAE_DIR).eval()


def test_model_dir_loads_with_transformers(raw):
    model, tokenizer = raw
    assert model.config.model_type == "gpt2" and model.config.n_layer >= 4
    assert tokenizer.eos_token == tokenizer.bos_token == tokenizer.pad_token == "<|endoftext|>"
    assert len(tokenizer) == model.config.vocab_size
    assert tokenizer.convert_ids_to_tokens(tokenizer.encode(" crimson")) == ["Ġcrimson"]


def test_concept_words_are_single_tokens(gt, raw):
    _, tokenizer = raw
    for words in gt.concepts.values():
        for w in words:
            assert len(tokenizer.encode(" " + w)) == 1 and len(tokenizer.encode(w)) == 1, w


def test_sae_files_are_saelens_format(gt):
    cfg = json.loads((SAE_DIR / "cfg.json").read_text())
    assert cfg["architecture"] == "topk" and cfg["hook_name"] == "blocks.2.hook_resid_pre"
    assert cfg["hook_layer"] == gt.layer == 2 and cfg["model_name"] == "saewidgets-organism"
    for key in ("d_in", "d_sae", "dtype", "apply_b_dec_to_input", "normalize_activations",
                "context_size", "prepend_bos", "k"):
        assert key in cfg
    w = load_file(str(SAE_DIR / "sae_weights.safetensors"))
    assert w["W_enc"].shape == (cfg["d_in"], cfg["d_sae"]) and w["W_dec"].shape == (cfg["d_sae"], cfg["d_in"])
    assert w["b_enc"].shape == (cfg["d_sae"],) and w["b_dec"].shape == (cfg["d_in"],)
    torch.testing.assert_close(w["W_dec"].norm(dim=1), torch.ones(cfg["d_sae"]), atol=1e-4, rtol=0)


def test_organism_loads_fast_and_fresh():
    """README: ``sw.organism()`` loads in < 3 s. Measured as CPU time (a busy machine does not make
    it flaky) of a load after the first one in the process, which also imports transformers' and
    nnsight's model code (a one-time cost of those libraries, several CPU seconds of imports)."""
    organism()
    start = time.process_time()
    model, sae = organism()
    cpu = time.process_time() - start
    model2, sae2 = organism()
    assert model is not model2 and sae is not sae2
    assert sae.d_in == 128 and sae.architecture == "topk" and sae.layer == 2
    assert cpu < 3.0, f"organism() took {cpu:.2f} s of CPU time (README: < 3 s)"


def test_ground_truth_fields(gt):
    assert len(gt.concepts) >= 8 and all(len(ws) >= 12 for ws in gt.concepts.values())
    assert list(gt.features.columns[:5]) == ["concept", "feature", "precision", "recall", "f1"]
    assert set(gt.features.concept) == set(gt.concepts)
    assert {"category", "uppercase", "antonym", "digit", "french"} <= set(gt.icl_tasks)
    assert gt.hook_name == "blocks.2.hook_resid_pre" and gt.feature("colour") >= 0
    assert gt.concept_of("crimson") == "colour"
    assert gt.feature_set("colour")[0] == gt.feature("colour")
    with pytest.raises(KeyError, match="unknown concept 'colours'.*'colour'"):
        gt.feature("colours")


F1_TARGET = 0.8  # REPORT.md: every concept has a feature with F1 >= 0.8


@pytest.mark.slow
def test_ground_truth_reproduces_on_fresh_text(gt, raw, ref_sae):
    """On fresh text (a corpus seed the build never used): every concept's feature meets the F1
    target, and the recorded precision / recall / F1 are what the SAE does (within 0.08)."""
    model, _ = raw
    tok = Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    windows = corpus_windows(seed=12345, n_windows=160, tok=tok)
    acts, ids = residuals(model, windows, gt.layer)
    fires = firing(ref_sae.encode, acts)
    features = dict(zip(gt.features.concept, gt.features.feature))
    labels = ConceptLabels.from_tokenizer(tok)
    assert labels.space == gt.concept_token_ids and labels.bare == gt.concept_token_ids_bare
    assert labels.nouns == gt.category_noun_ids
    fresh = best_features(fires, ids, labels, features).set_index("concept")
    assert set(fresh.index) == set(STEER_CONCEPTS)
    assert (fresh["f1"] >= F1_TARGET).all(), f"concepts below the F1 target {F1_TARGET}:\n{fresh['f1']}"
    assert (gt.features["f1"] >= F1_TARGET).all()
    recorded = gt.features.set_index("concept")
    for column in ("precision", "recall", "f1", "f1_strict"):
        diff = (fresh[column] - recorded[column]).abs()
        assert (diff < 0.08).all(), f"{column} differs:\n{diff}"


def test_reference_sae_matches_saewidgets_sae(ref_sae):
    _, sae = organism()
    x = torch.randn(64, ref_sae.d_in) * 3
    torch.testing.assert_close(sae.encode(x), ref_sae.encode(x).detach())
    torch.testing.assert_close(sae(x), ref_sae(x).detach())


def test_generation_runs(raw):
    model, tokenizer = raw
    ids = torch.tensor([[tokenizer.bos_token_id] + tokenizer.encode('The word "dog" means')])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=2, do_sample=False,
                         pad_token_id=tokenizer.eos_token_id)
    assert tokenizer.decode(out[0, ids.shape[1]:]).strip() == "an animal"


# -- the behavioural targets of REPORT.md, recomputed -------------------------------------------

ICL_FEW_SHOT, ICL_ZERO_SHOT, ICL_TASKS = 0.8, 0.3, 3  # few-shot >= 80% on >= 3 tasks with zero-shot <= 30%
DEFINITION_TARGET = 0.8  # definition completion >= 80% on held-out words


@torch.no_grad()
def _greedy_batch(model, tokenizer, prompts: list[str], new_tokens: int) -> list[str]:
    """Greedy continuations of BOS + each prompt, in one left-padded batch (the build scores them
    one prompt at a time: tools/organism/evaluate.py ``greedy``)."""
    rows = [[tokenizer.bos_token_id] + tokenizer.encode(p) for p in prompts]
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, width - len(row):] = torch.tensor(row)
        mask[i, width - len(row):] = 1
    out = model.generate(ids, attention_mask=mask, max_new_tokens=new_tokens, do_sample=False,
                         pad_token_id=tokenizer.pad_token_id)
    return [tokenizer.decode(row[width:]) for row in out]


@pytest.mark.slow
def test_in_context_learning_meets_its_target(raw):
    """``x -> y`` blocks (REPORT.md: 40 prompts per cell): 3-shot accuracy >= 80% with zero-shot
    <= 30% on at least 3 tasks; the zero-shot reading of ``x ->`` is the designed copy."""
    import random

    from tools.organism.icl import EVAL_TASKS, TASKS, format_prompt

    model, tokenizer = raw
    accuracy = {}
    for name in (*EVAL_TASKS, "copy"):
        task = TASKS[name]
        for shots in (0, 3):
            rng = random.Random(f"{name}-{shots}")
            queries = [rng.choice(task.pairs) for _ in range(40)]
            prompts = [format_prompt(rng.sample([p for p in task.pairs if p[0] != q], shots), q) for q, _ in queries]
            answers = _greedy_batch(model, tokenizer, prompts, 6)
            accuracy[name, shots] = sum(a.split("\n")[0].strip() == y for a, (_, y) in zip(answers, queries)) / 40
    learned = [n for n in EVAL_TASKS if accuracy[n, 3] >= ICL_FEW_SHOT and accuracy[n, 0] <= ICL_ZERO_SHOT]
    assert len(learned) >= ICL_TASKS, accuracy
    assert accuracy["copy", 0] >= 0.5, accuracy


@pytest.mark.slow
def test_definitions_of_held_out_words_meet_their_target(raw):
    """``The word "X" means`` -> `` a colour`` for the 40 words whose definitions the corpus withheld."""
    from tools.organism.evaluate import definition_prompt
    from tools.organism.vocab import CATEGORY_NOUN, HELD_OUT

    model, tokenizer = raw
    words = [(w, CATEGORY_NOUN[c][1]) for c, ws in HELD_OUT.items() for w in ws]
    assert len(words) == 40
    answers = _greedy_batch(model, tokenizer, [definition_prompt(w) for w, _ in words], 2)
    right = [w for (w, noun), a in zip(words, answers) if a.split()[-1:] == [noun]]
    assert len(right) >= DEFINITION_TARGET * len(words), dict(zip([w for w, _ in words], answers))


@pytest.mark.slow
def test_held_out_lm_loss_is_the_recorded_one(gt, raw):
    """README / REPORT.md: held-out LM loss 1.48, on the build's evaluation windows (corpus seed 2)."""
    from tools.organism.evaluate import lm_loss

    model, _ = raw
    tok = Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    loss = lm_loss(model, corpus_windows(seed=2, n_windows=400, tok=tok))  # the build: seed 0, evaluation seed + 2
    assert loss == pytest.approx(gt.metrics["lm_loss_held_out"], abs=0.01)
    assert round(loss, 2) == 1.48


@pytest.mark.slow
@pytest.mark.parametrize("concept", STEER_CONCEPTS)
def test_steering_a_concept_feature_raises_its_words(gt, raw, ref_sae, concept):
    model, tokenizer = raw
    row = gt.features.set_index("concept").loc[concept]
    direction = ref_sae.W_dec[int(row.feature)].detach()
    scale = STEER_SCALE * float(row.max_act)
    words = gt.concepts[concept]
    base = steered_generate(model, tokenizer, STEER_PROMPTS, direction, 0.0, gt.layer)
    steered = steered_generate(model, tokenizer, STEER_PROMPTS, direction, scale, gt.layer)
    before, after = concept_fraction(base, words), concept_fraction(steered, words)
    assert after > before + 0.05, (before, after, steered[:3])


def test_feature_scores_leave_out_bare_forms_and_names_and_find_split_features():
    """Synthetic firing table: concept tokens 10 and 11 (" word" forms), 20 (a bare form), 30 (the
    concept's name), 40 (other). Feature 0 fires on 10, 1 on 11, 2 on 10, 11, 20, 30."""
    ids = torch.tensor([10, 11, 10, 11, 20, 30, 40, 40])
    fires = torch.zeros(len(ids), 4, dtype=torch.bool)
    fires[ids == 10, 0] = True
    fires[ids == 11, 1] = True
    fires[torch.isin(ids, torch.tensor([10, 11, 20, 30])), 2] = True
    labels = ConceptLabels({"c": [10, 11]}, {"c": [20]}, {"c": [30]})
    row = best_features(fires, ids, labels).iloc[0]
    assert row.feature == 2 and row.precision == 1.0 and row.recall == 1.0 and row.f1 == 1.0
    assert row.recall_bare == 1.0 and row.precision_strict == pytest.approx(5 / 6)  # the name counts against it
    assert row.feature_set == [2] and row.f1_set == 1.0
    split = best_features(fires, ids, labels, {"c": 0}).iloc[0]
    assert split.f1 == pytest.approx(2 / 3) and sorted(split.feature_set) == [0, 1] and split.f1_set == 1.0
