"""The atlas on the model organism: ground truth, and the explorer's examples panel, search,
label box, slider range and all-features table (Python side; the browser test draws them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import saewidgets as sw


def organism_atlas(path: Path):
    """The organism's atlas over its own corpus (the default), collected once per test session."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores: one thread is several times faster here
    try:
        model, sae = sw.organism()
        return model, sae, sw.collect_activations(model, sae, path=path, progress=False)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def organism(tmp_path_factory):
    return organism_atlas(tmp_path_factory.getbasetemp() / "organism-atlas.sqlite")


def _peak_words(atlas, feature: int, n: int = 10) -> list[str]:
    top = atlas.examples(feature).head(n)
    return [tokens[peak].strip() for tokens, peak in zip(top["tokens"], top["peak"])]


def test_the_default_corpus_is_the_organisms(organism):
    _, _, atlas = organism
    assert atlas.info["run"]["corpus"] == "sw.organism_corpus()"
    assert atlas.n_tokens > 100_000


def test_every_concept_features_top_examples_peak_on_its_words(organism):
    """At least 9 of the top 10 peak on a word of the concept, for every concept but one: the
    animal feature fires as strongly (6.4) on " soft" of its own tail ", with soft fur" (a
    phrase the organism's corpus writes after animal words only) as on the animal words
    themselves, so 4 of its top 10 peak there. Every top-10 peak is a concept word or a word
    of that concept's own tails (tools/organism/templates.TAILS)."""
    from tools.organism.templates import TAILS

    _, _, atlas = organism
    gt = sw.organism_ground_truth()
    strict = {}
    for concept, words in gt.concepts.items():
        peaks = _peak_words(atlas, gt.feature(concept))
        tail_words = {w.strip(",. ") for tail in TAILS[concept] for w in tail.split()}
        strict[concept] = sum(p in words for p in peaks)
        others = [p for p in peaks if p not in words]
        assert all(p in tail_words for p in others), f"{concept}: top-10 peaks off its words and tails: {others}"
    below = {c: n for c, n in strict.items() if n < 9}
    assert set(below) <= {"animal"} and all(n >= 5 for n in below.values()), strict


def test_searching_any_concept_word_finds_its_feature_in_the_top_3(organism):
    _, _, atlas = organism
    gt = sw.organism_ground_truth()
    misses = []
    for concept, words in gt.concepts.items():
        feature = gt.feature(concept)
        for word in words:
            found = atlas.search(word)["feature"].head(3).tolist()
            if feature not in found:
                misses.append((concept, word, found))
    assert not misses, misses


def test_density_frequency_and_quantiles_on_the_organism(organism):
    _, _, atlas = organism
    gt = sw.organism_ground_truth()
    f = gt.feature("colour")
    stats = atlas.feature_stats(f)
    assert 0 < stats["frequency"] < 0.2 and stats["max_act"] > 5
    hist = atlas.histogram(f)
    assert sum(hist["counts"]) == stats["n_fired"]
    assert hist["edges"][0] == 0 and hist["edges"][-1] >= stats["max_act"]
    groups = atlas.quantile_groups(f)
    assert len(groups) >= 5  # weak activations are visible too
    assert groups[-1]["high"] <= stats["max_act"] / 2  # down to the lower half of the range
    assert sum(g["count"] for g in groups) <= stats["n_fired"]
    # similar features: the concept's own row is nearest to itself only by construction; co-activation exists
    assert len(atlas.coactivation(f)) > 0


def test_explorer_shows_examples_slider_range_search_and_label(organism, tmp_path):
    model, sae, atlas = organism
    gt = sw.organism_ground_truth()
    f = gt.feature("animal")
    copy = atlas.copy_to(tmp_path / "mine.sqlite")  # labels go to a copy: the shared fixture stays clean
    plain = sw.FeatureExplorer(model, sae, feature=f)
    explorer = sw.FeatureExplorer(model, sae, feature=f, atlas=copy)
    try:
        ex = explorer.examples
        assert ex["status"] == "ready" and ex["feature"] == f
        assert len(ex["top"]) == 20 and ex["top"][0]["value"] >= ex["top"][-1]["value"]
        first = ex["top"][0]
        assert len(first["tokens"]) == len(first["acts"]) and first["tokens"][first["peak"]].strip() in gt.concepts["animal"]
        assert ex["quantiles"] and ex["density"]["spec"]["data"] == {"name": "bins"}
        assert len(ex["similar"]) == 8 and all(s[0] != f for s in ex["similar"])
        # the slider spans about twice the measured peak (was +-100 with no typical activation)
        measured = explorer.atlas.feature_stats(f)["max_act"]
        assert plain.scale_range["max"] >= 50
        assert 2 * measured <= explorer.scale_range["max"] <= 5 * measured
        # search finds the concept feature from a concept word (atlas tokens), and labels
        explorer.search = gt.concepts["animal"][0]
        assert f in [hit[0] for hit in explorer.search_results[:3]]
        explorer.label = "animals (mine)"
        assert sw.Atlas.open(copy).label(f) == "animals (mine)"  # written at once
        explorer.search = "mine"
        assert explorer.search_results[0][0] == f
        explorer.feature = gt.feature("colour")
        assert explorer.label == "" and explorer.examples["feature"] == gt.feature("colour")
        explorer.feature = f
        assert explorer.label == "animals (mine)"
        # a raw direction: no examples, the label box refuses politely
        explorer.direction = torch.randn(sae.d_in)
        assert explorer.examples["status"] == "direction"
        # the all-features table, sent when the view opens it
        explorer._send_table()
        assert explorer.table["n"] == sae.d_sae and explorer.table["labels"][str(f)] == "animals (mine)"
        assert len(explorer.table_data) > 0
    finally:
        explorer.close()
        plain.close()


def test_feature_table_widget_packs_every_feature(organism):
    from saewidgets.export.packing import unpack

    _, _, atlas = organism
    table = sw.FeatureTable(atlas.path)
    columns = unpack(table.table["columns"], memoryview(table.table_data))
    assert len(columns["feature"]) == atlas.d_sae
    stats = atlas.stats()
    np.testing.assert_allclose(columns["max_act"], stats["max_act"], rtol=1e-6)
    assert table.table["kinds"][columns["kind"][int(stats["kind"].ne("none").idxmax())]] != "none"


def test_a_mismatched_atlas_is_refused(organism, tmp_path):
    from tiny_models import random_sae, tiny_model

    _, _, atlas = organism
    model = tiny_model("gpt2", d_model=32, n_layers=3)
    with pytest.raises(ValueError, match="collected for it"):
        sw.FeatureExplorer(model, random_sae(32, 64, layer=1), atlas=atlas.path)


def test_snapshots_and_saved_pages_carry_the_examples(organism, tmp_path):
    model, sae, atlas = organism
    gt = sw.organism_ground_truth()
    animal, colour = gt.feature("animal"), gt.feature("colour")
    explorer = sw.FeatureExplorer(model, sae, feature=animal, atlas=atlas.path, auto_self_explain=False,
                                  max_new_tokens=6)
    try:
        explorer.snapshot(features=[colour], n_scales=3, self_explain=False, progress=False)
        items = explorer.precomputed["items"]
        for f in (animal, colour):
            assert items[str(f)]["traits"]["examples"]["feature"] == f
            assert len(items[str(f)]["traits"]["examples"]["top"]) == 20
        assert explorer.table["n"] == sae.d_sae  # the all-features table is in the saved state
        page = explorer.save_html(tmp_path / "page.html", features=[colour], progress=False)
        html = page.path.read_text()
        top = items[str(colour)]["traits"]["examples"]["top"][0]
        assert '"examples"' in html and json_text(top["tokens"][top["peak"]]) in html
    finally:
        explorer.close()


def json_text(token: str) -> str:
    import json

    return json.dumps(token)[1:-1]
