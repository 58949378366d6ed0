"""Ground truth: the model organism's concept features, self-explained, name their concept.

The organism is a 4-block GPT-2 trained on sentences such as `The word "crimson" means a
colour.`; its SAE reads resid_pre[2]. A concept counts as explained when the explanation
at the chosen scale contains, as a word, the concept's name, its category noun (`job` for
profession) or one of its words (`a sausage for dinner` for food: the model names a
member). Levels asserted are the ones measured on the shipped build minus a margin of one
concept; a build not measured yet must still reach the 70% target with a layer map and name
at least one concept without.
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

import saewidgets as sw
from saewidgets.model_organism import ground_truth as organism_data

pytestmark = pytest.mark.skipif(
    not (organism_data.DATA_DIR / "ground_truth.json").is_file(),
    reason="the model organism is not built yet (saewidgets/model_organism/data/ground_truth.json is missing)",
)

# Concepts named (of 10) per organism build, keyed by its concept -> feature table:
# (paper's method, decoder rows injected as they are; with a layer map fitted on 400
# organism documents). See benchmarks/README.md, "Self-explanation".
MEASURED = {
    (("colour", 47), ("animal", 171), ("number", 27), ("food", 155), ("city", 179), ("emotion", 36),
     ("name", 19), ("profession", 227), ("vehicle", 167), ("instrument", 182)): (4, 9),  # build of 09:30
}
MARGIN = 1
TARGET = 0.7
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


def required(concepts, features, which: int) -> int:
    """The level to assert: measured minus the margin for a known build, else the floor."""
    measured = MEASURED.get(tuple(zip(concepts, features)))
    if measured is not None:
        return measured[which] - MARGIN
    return 1 if which == 0 else int(np.ceil(TARGET * len(concepts)))


def explained(df, concepts, features) -> list[str]:
    return [c for c, f in zip(concepts, features) if names_concept(df.attrs["chosen_explanation"][f], c)]


def test_names_concept_matcher():
    assert names_concept("a colour)", "colour") and names_concept("a job", "profession")
    assert not names_concept("a vehicle", "colour") and not names_concept("colourful", "colour")
    assert names_concept("a Toronto airport", "city") and not names_concept("a Toronto airport", "city", members=False)


def test_concept_features_with_the_papers_method(organism):
    model, sae, concepts, features = organism
    df = sw.self_explain(model, sae, features=features, max_new_tokens=4, progress=False, defaults=False)
    hits = explained(df, concepts, features)
    print(f"self-explanation, paper's method: {len(hits)}/{len(concepts)} concepts named: {hits}")
    assert len(hits) >= required(concepts, features, 0)


def test_concept_features_with_a_layer_map(organism):
    from saewidgets.self_explanation.explain import fit_layer_map
    from tools.organism.corpus import iter_documents

    model, sae, concepts, features = organism
    texts = list(itertools.islice(iter_documents(123), 400))
    layer_map = fit_layer_map(model, sae, texts, 0, batch_size=100, progress=False)
    assert layer_map.r2 > 0.5
    df = sw.self_explain(model, sae, features=features, layer_map=layer_map, max_new_tokens=4, progress=False)
    hits = explained(df, concepts, features)
    print(f"self-explanation with a layer map: {len(hits)}/{len(concepts)} concepts named: {hits}")
    assert len(hits) >= required(concepts, features, 1)
    assert len(hits) >= TARGET * len(concepts)


def test_the_organisms_shipped_settings_name_most_concepts_by_default(organism):
    """sw.organism() attaches its fitted layer map: a plain sw.self_explain (what a plain
    FeatureExplorer runs) names >= 8 of 10 concepts, never with a default answer."""
    model, sae, concepts, features = organism
    df = sw.self_explain(model, sae, features=features, progress=False)
    assert df.attrs["mapped"] and df.attrs["layer"] == 0
    hits = explained(df, concepts, features)
    print(f"self-explanation with the organism's defaults: {len(hits)}/{len(concepts)} concepts named: {hits}")
    assert len(hits) >= 8
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
