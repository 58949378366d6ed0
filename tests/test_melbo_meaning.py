"""What MELBO vectors mean: generations (the same as sw.steer at the source layer), the effect at
another layer (against plain hooks), SAE codes, logit lens, self-explanation, words and groups."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

import saewidgets as sw
from saewidgets.melbo import meaning
from tiny_models import random_sae, tiny_model
from tools.references.melbo_hooks import left_pad, target_residuals

PROMPTS = ["The quick brown fox jumps", "Hello", "Red, green and blue are colours"]


@pytest.fixture(scope="module")
def setup():
    model = tiny_model("gpt2")
    sae = random_sae(32, 64, layer=1)
    vectors = sw.melbo(model, PROMPTS, source_layer=0, target_layer=2, radius=4.0, n_vectors=2, steps=6, lr=5e-2,
                       progress=False)
    return model, sae, vectors


def test_generations_are_what_steer_gives_at_the_source_layer(setup):
    model, sae, vectors = setup
    held = ["She said"]
    frame = meaning.steered_generations(model, sae, vectors, held_out=held, multiples=(0.5, 1.5), max_new_tokens=6)
    assert len(frame) == 2 * 2 * (len(PROMPTS) + 1)
    assert set(frame["split"]) == {"train", "held_out"} and set(frame["norm"]) == {2.0, 6.0}
    few = meaning.steered_generations(model, sae, vectors, held_out=held, multiples=(1.5,), indices=[1], max_new_tokens=6)
    for prompt in (PROMPTS[2], held[0]):
        ref = sw.steer(model, sae, prompt, vectors[1].scaled(1.5), hook=vectors.hook, max_new_tokens=6,
                       prepend_bos=False, progress=False)
        for table in (frame, few):  # batched over directions, or over prompts: the same rows
            row = table[(table["vector"] == 1) & (table["multiple"] == 1.5) & (table["prompt"] == prompt)].iloc[0]
            assert (row["baseline"], row["steered"]) == (ref.baseline, ref.steered)


def test_effect_against_plain_hooks(setup):
    model, sae, vectors = setup
    v = vectors[0].vector
    assert torch.equal(meaning.effect(model, vectors, 0, 0), v)  # at the source layer: the vector
    ids, mask = left_pad([model.tokenizer(p)["input_ids"] for p in PROMPTS], 0)
    with torch.no_grad():
        delta = target_residuals(model._module, ids, mask, 0, 2, v) - target_residuals(model._module, ids, mask, 0, 2, None)
    expected = delta[mask.bool()].mean(0)
    torch.testing.assert_close(meaning.effect(model, vectors, 0, 2), expected, atol=1e-5, rtol=1e-4)


def test_sae_code_and_logit_lens_of_the_effect(setup):
    model, sae, vectors = setup
    code = meaning.decompose_vector(model, sae, vectors, 1, method="ito", l0=4)
    ref = sw.decompose(sae, meaning.effect(model, vectors, 1, 1), method="ito", l0=4)
    assert code.features == pytest.approx(ref.features) and code.l0 <= 4
    raw = meaning.decompose_vector(model, sae, vectors, 1, of="vector", method="encode")
    assert raw.features == pytest.approx(sw.decompose(sae, vectors[1].vector, method="encode").features)
    late = random_sae(32, 64, layer=0)
    later = sw.melbo(model, PROMPTS, source_layer=1, target_layer=3, radius=4.0, n_vectors=1, steps=2, progress=False)
    with pytest.raises(ValueError, match="before the vectors' source layer 1"):
        meaning.decompose_vector(model, late, later, 0)
    with pytest.raises(ValueError, match="of must be"):
        meaning.decompose_vector(model, sae, vectors, 0, of="text")
    seen = meaning.lens(model, sae, vectors, 0, k=5)
    direction = sw.Direction(meaning.effect(model, vectors, 0, 3))
    stats = sw.logit_stats(model, sae, [direction], k=5, progress=False, random_baseline=False).iloc[0]
    assert list(seen["top_tokens"]) == list(stats["top_tokens"]) and len(seen["bottom_tokens"]) == 5


def test_self_explanation_is_patched_at_the_source_layer(setup):
    model, sae, vectors = setup
    df = meaning.self_explanation(model, sae, vectors, 0, scales=[0.0, 1.0, 2.0], max_new_tokens=3)
    assert df.attrs["layer"] == 0 and len(df) == 3 and set(df["feature"]) == {"MELBO 0"}


def test_words_shares_and_groups():
    assert meaning.words("Red, green... and BLUE's 42!") == ["red", "green", "and", "blue's", "42"]
    shares = meaning.word_shares(["red cat", "blue blue dog"], {"colour": ["red", "Blue"], "animal": ["cat"]})
    assert shares == pytest.approx({"colour": 0.6, "animal": 0.2})
    rows = []
    added = {0: "red blue red green", 1: "blue red green green", 2: "cat dog cat", 3: "dog cat mouse"}
    for vector, text in added.items():
        for prompt in ("a", "b"):
            rows.append(dict(vector=vector, prompt=prompt, split="train", multiple=1.0, norm=1.0,
                             baseline="the day was long", steered=f"the day {text}"))
    frame = pd.DataFrame(rows)
    assert meaning.group_by_behaviour(frame) == [[0, 1], [2, 3]]
    assert meaning.group_by_behaviour(frame, threshold=0.99) == [[0], [1], [2], [3]]
    assert set(meaning.group_label(frame, [0, 1]).split()[:3]) == {"red", "blue", "green"}
    with pytest.raises(ValueError, match="threshold"):
        meaning.group_by_behaviour(frame, threshold=2)


def test_melbo_meaning_puts_it_together(setup):
    model, sae, vectors = setup
    result = sw.melbo_meaning(model, sae, vectors, held_out=["She said"], multiples=(1.0,), max_new_tokens=5,
                              explain=False, progress=False)
    frame = result.to_frame()
    assert list(frame["index"]) == [0, 1] and all(len(f) > 0 for f in frame["top_features"])
    assert result[1].code.l0 <= 8 and sorted(i for g in result.groups for i in g) == [0, 1]
    assert len(result.group_labels) == len(result.groups)
    with pytest.raises(ValueError, match="vector index 5"):
        sw.melbo_meaning(model, sae, vectors, indices=[5], progress=False)
    with pytest.raises(ValueError, match="multiples is empty"):
        meaning.steered_generations(model, sae, vectors, multiples=[])
