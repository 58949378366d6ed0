"""Ground truth: the model organism's concept features, self-explained, name their concept.

The organism is a 4-block GPT-2 trained on sentences such as `The word "crimson" means a
colour.`; its SAE reads resid_pre[2]. A concept counts as explained when the explanation
at the chosen scale contains the concept's name or its category noun (`job` for
profession) as a word. Levels asserted are the measured ones minus a margin of one concept.
"""

from __future__ import annotations

import itertools
import re

import pytest

import saewidgets as sw
from saewidgets.model_organism import ground_truth as organism_data

pytestmark = pytest.mark.skipif(
    not (organism_data.DATA_DIR / "ground_truth.json").is_file(),
    reason="the model organism is not built yet (saewidgets/model_organism/data/ground_truth.json is missing)",
)

# Measured on the shipped organism (see benchmarks/README.md, "Self-explanation").
MEASURED_PLAIN = 1  # of 10: the paper's method, decoder rows injected as they are
MEASURED_MAPPED = 9  # of 10: with a layer map fitted on 400 organism documents
MARGIN = 1
SYNONYMS = {"colour": {"color"}, "profession": {"profession"}}


def names_concept(text: str, concept: str) -> bool:
    from saewidgets.model_organism.vocab import CATEGORY_NOUN

    names = {concept, CATEGORY_NOUN.get(concept, ("", concept))[1], *SYNONYMS.get(concept, ())}
    return bool(set(re.findall(r"[a-z]+", text.lower())) & names)


@pytest.fixture(scope="module")
def organism():
    model, sae = sw.organism()
    truth = sw.organism_ground_truth()
    concepts = list(truth.concepts)
    return model, sae, concepts, [truth.feature(c) for c in concepts]


def explained(df, concepts, features) -> list[str]:
    return [c for c, f in zip(concepts, features) if names_concept(df.attrs["chosen_explanation"][f], c)]


def test_names_concept_matcher():
    assert names_concept("a colour)", "colour") and names_concept("a job", "profession")
    assert not names_concept("a vehicle", "colour") and not names_concept("colourful", "colour")


def test_concept_features_with_the_papers_method(organism):
    model, sae, concepts, features = organism
    df = sw.self_explain(model, sae, features=features, max_new_tokens=4, progress=False)
    hits = explained(df, concepts, features)
    print(f"self-explanation, paper's method: {len(hits)}/{len(concepts)} concepts named: {hits}")
    assert len(hits) >= MEASURED_PLAIN - MARGIN


def test_concept_features_with_a_layer_map(organism):
    from saewidgets.analysis.self_explain import fit_layer_map
    from saewidgets.model_organism.corpus import iter_documents

    model, sae, concepts, features = organism
    texts = list(itertools.islice(iter_documents(123), 400))
    layer_map = fit_layer_map(model, sae, texts, 0, batch_size=100, progress=False)
    assert layer_map.r2 > 0.5
    df = sw.self_explain(model, sae, features=features, layer_map=layer_map, max_new_tokens=4, progress=False)
    hits = explained(df, concepts, features)
    print(f"self-explanation with a layer map: {len(hits)}/{len(concepts)} concepts named: {hits}")
    assert len(hits) >= MEASURED_MAPPED - MARGIN
    assert len(hits) >= 0.7 * len(concepts)
