"""Ground truth: the model organism's concept features, self-explained, name their concept.

The organism is a 4-block GPT-2 trained on sentences such as `The word "crimson" means a
colour.`; its SAE reads resid_pre[2]. A concept counts as explained when the explanation
at the chosen scale contains, as a word, the concept's name, its category noun (`job` for
profession) or one of its words (`a sausage for dinner` for food: the model names a
member), and is not a default answer (what the prompt says with nothing or the zero vector
patched in: rows flagged ``default_answer``).

Targets, for the build they were stated for (benchmarks/README.md, "Self-explanation"): the
paper's method (decoder rows injected as they are) names at least 4 of the 10 concepts; with
a layer map (one fitted on 400 of its shipped documents to layer 0, and the one ``sw.organism()``
attaches as the SAE's self-explanation default) at least 8. A rebuilt organism fails here
until it is measured and the targets restated.
"""

from __future__ import annotations

import re

import pytest

import saewidgets as sw

# The build the targets were stated for: its concept -> feature table.
BUILD = (("colour", 47), ("animal", 171), ("number", 27), ("food", 155), ("city", 179), ("emotion", 36),
         ("name", 19), ("profession", 227), ("vehicle", 167), ("instrument", 182))
PAPERS_METHOD_TARGET = 4  # concepts named (of 10), decoder rows injected as they are
LAYER_MAP_TARGET = 8  # with a layer map
SYNONYMS = {"colour": {"color"}, "profession": {"profession"}}


def names_concept(text: str, concept: str, members: bool = True) -> bool:
    """The text names the concept (`colour`), its category noun (`job`) or, with `members`, one
    of its words (`a sausage for dinner` names food)."""
    from tools.organism.vocab import CATEGORY_NOUN, CONCEPTS

    names = {concept, CATEGORY_NOUN.get(concept, ("", concept))[1], *SYNONYMS.get(concept, ())}
    if members:
        names |= {w.lower() for w in CONCEPTS.get(concept, ())}
    return bool(set(re.findall(r"[a-z]+", text.lower())) & names)


@pytest.fixture(scope="module")
def organism():
    model, sae = sw.organism()
    truth = sw.organism_ground_truth()
    concepts = list(truth.concepts)
    return model, sae, concepts, [truth.feature(c) for c in concepts]


def explained(df, concepts, features) -> list[str]:
    """Concepts whose chosen explanation names them and is not a default answer."""
    hits = []
    for concept, feature in zip(concepts, features):
        chosen = df[(df["feature"] == feature) & df["chosen"]].iloc[0]
        text = df.attrs["chosen_explanation"][feature]
        if text and not chosen["default_answer"] and chosen["explanation"] == text and names_concept(text, concept):
            hits.append(concept)
    return hits


def test_names_concept_matcher():
    assert names_concept("a colour)", "colour") and names_concept("a job", "profession")
    assert not names_concept("a vehicle", "colour") and not names_concept("colourful", "colour")
    assert names_concept("a Toronto airport", "city") and not names_concept("a Toronto airport", "city", members=False)


def test_the_targets_were_stated_for_this_build(organism):
    _, _, concepts, features = organism
    assert tuple(zip(concepts, features)) == BUILD, (
        "the organism was rebuilt (its concept -> feature table changed): measure self-explanation on "
        "the new build (benchmarks/README.md) and restate the targets in this file")


@pytest.mark.slow
def test_concept_features_with_the_papers_method(organism):
    model, sae, concepts, features = organism
    df = sw.self_explain(model, sae, features=features, max_new_tokens=4, defaults=False, progress=False)
    hits = explained(df, concepts, features)
    print(f"self-explanation, paper's method: {len(hits)}/{len(concepts)} concepts named: {hits}")
    assert len(hits) >= PAPERS_METHOD_TARGET, hits


@pytest.mark.slow
def test_concept_features_with_a_layer_map(organism):
    from saewidgets.self_explanation.explain import fit_layer_map

    model, sae, concepts, features = organism
    layer_map = fit_layer_map(model, sae, sw.organism_corpus(400), 0, batch_size=100, progress=False)
    assert layer_map.r2 > 0.5
    df = sw.self_explain(model, sae, features=features, layer_map=layer_map, max_new_tokens=4, defaults=False,
                         progress=False)
    hits = explained(df, concepts, features)
    print(f"self-explanation with a layer map: {len(hits)}/{len(concepts)} concepts named: {hits}")
    assert len(hits) >= LAYER_MAP_TARGET, hits


@pytest.mark.slow
def test_the_organisms_shipped_settings_name_most_concepts_by_default(organism):
    """sw.organism() attaches its fitted layer map: a plain sw.self_explain (what a plain
    FeatureExplorer runs) names >= 8 of 10 concepts, never with a default answer."""
    model, sae, concepts, features = organism
    df = sw.self_explain(model, sae, features=features, progress=False)
    assert df.attrs["mapped"] and df.attrs["layer"] == 0
    hits = explained(df, concepts, features)
    print(f"self-explanation with the organism's defaults: {len(hits)}/{len(concepts)} concepts named: {hits}")
    assert len(hits) >= LAYER_MAP_TARGET, hits
    for f in features:
        chosen = df[(df["feature"] == f) & df["chosen"]].iloc[0]
        text = df.attrs["chosen_explanation"][f]
        assert text == "" or not chosen["default_answer"]
        assert text not in {df.attrs["unpatched_explanation"], df.attrs["zero_explanation"]} - {""} or text == ""
    explorer = sw.FeatureExplorer(model, sae, feature=features[0], max_new_tokens=2)
    try:
        panel = explorer.self_explanation
        assert panel["mapped"] and panel["explanation"] == df.attrs["chosen_explanation"][features[0]]
    finally:
        explorer.close()
