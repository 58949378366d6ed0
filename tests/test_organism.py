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
    start = time.perf_counter()
    model, sae = organism()
    elapsed = time.perf_counter() - start
    model2, sae2 = organism()
    assert model is not model2 and sae is not sae2
    assert sae.d_in == 128 and sae.architecture == "topk" and sae.layer == 2
    assert elapsed < 10, f"organism() took {elapsed:.1f}s"


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


def test_ground_truth_reproduces_on_fresh_text(gt, raw, ref_sae):
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
