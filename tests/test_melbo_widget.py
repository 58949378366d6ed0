"""MelboExplorer from Python (no view): cards, the selected vector's continuations, training more
(and stopping), vectors that survive in the store, opening a vector in a FeatureExplorer."""

from __future__ import annotations

import threading

import pytest
import torch

import saewidgets as sw
from saewidgets.melbo import MelboStore
from saewidgets.sessions.melbo import MelboSession
from tiny_models import random_sae, tiny_model

PROMPTS = ["The quick brown fox jumps", "Hello", "Red, green and blue are colours"]
SETTINGS = dict(source_layer=0, target_layer=2, radius=4.0, steps=6, lr=5e-2)


@pytest.fixture(scope="module")
def setup():
    return tiny_model("gpt2"), random_sae(32, 64, layer=1)


def test_gallery_cards_generations_and_selection(setup, tmp_path):
    model, sae = setup
    gallery = sw.MelboExplorer(model, sae, PROMPTS, n_vectors=2, held_out=["She said"], path=tmp_path / "m.sqlite",
                               multiples=(0.5, 1.0, 2.0), max_new_tokens=5, progress=False, **SETTINGS)
    assert gallery.wait(60)
    assert [c["index"] for c in gallery.cards] == [0, 1] and gallery.selected == 0
    card = gallery.cards[1]
    assert card["norm"] == pytest.approx(4.0) and len(card["features"]) >= 1 and card["top_tokens"]
    assert card["objective"] == pytest.approx(gallery.vectors.objectives[1])
    gen = gallery.generations
    assert gen["status"] == "done" and gen["multiples"] == [0.5, 1.0, 2.0]
    assert [r["split"] for r in gen["rows"]] == ["train"] * 3 + ["held_out"]
    ref = sw.steer(model, sae, "She said", gallery.vectors[0].scaled(2.0), hook=gallery.vectors.hook,
                   max_new_tokens=5, prepend_bos=False, progress=False)
    assert (gen["rows"][3]["baseline"], gen["rows"][3]["steered"][2]) == (ref.baseline, ref.steered)
    assert gallery.explanation["status"] == "done" and gallery.explanation["layer"] == 0  # auto for small models
    assert gallery.cards[0]["explanation"] == gallery.explanation["explanation"]  # shown on its card too
    assert gallery.saved_path == str(tmp_path / "m.sqlite") and gallery.settings["radius"] == 4.0

    gallery.selected = 1
    assert gallery.generations["index"] == 1 and gallery.generations["status"] == "done"
    gallery.selected = 9  # refused: the error says why, the selection stays
    assert gallery.selected == 1 and "vector 9 does not exist" in gallery.error
    gallery.multiple = 1.7
    assert gallery.multiple == 2.0  # the slider snaps to the grid
    assert {tuple(g["members"]) for g in gallery.groups} <= {(0,), (1,), (0, 1)}

    explorer = gallery.open_explorer(1, auto_self_explain=False)
    assert isinstance(explorer, sw.FeatureExplorer) and explorer.binding.layer == 0
    assert explorer.direction.name == "MELBO 1" and torch.equal(explorer.direction.vector, gallery.vectors[1].vector)
    assert explorer.generation["status"] == "done" and gallery.explorers == [explorer]
    gallery.close()


def test_train_more_stop_and_reload_from_the_store(setup, tmp_path):
    model, sae = setup
    path = tmp_path / "m.sqlite"
    gallery = sw.MelboExplorer(model, sae, PROMPTS, n_vectors=1, path=path, auto_explain=False, max_new_tokens=4,
                               progress=False, **SETTINGS)
    gallery.train(2)
    assert gallery.training["status"] == "done" and gallery.training["trained"] == 2
    assert len(gallery.cards) == 3 and gallery.explanation["status"] == "off"
    expected = sw.melbo(model, PROMPTS, n_vectors=3, progress=False, **SETTINGS)
    assert torch.equal(gallery.vectors.vectors, expected.vectors)  # the same run, continued

    slow = sw.MelboExplorer(model, sae, PROMPTS, path=path, auto_explain=False, max_new_tokens=4, progress=False,
                            **{**SETTINGS, "steps": 400})
    timer = threading.Timer(1.0, slow.stop)
    timer.start()
    slow.train(3)
    timer.join()
    assert slow.training["status"] == "stopped" and slow.training["trained"] < 3
    run = [r for r in MelboStore(path).runs() if r.settings["steps"] == 400][0]
    assert MelboStore(path).progress(run.id) is not None  # the vector in progress is checkpointed

    again = sw.MelboExplorer(model, sae, PROMPTS, path=path, auto_explain=False, max_new_tokens=4, progress=False,
                             **SETTINGS)  # a new kernel: the vectors come back, nothing trains
    assert torch.equal(again.vectors.vectors, gallery.vectors.vectors) and len(again.cards) == 3


def test_session_from_vectors_and_without_saving(setup, tmp_path):
    model, sae = setup
    binding = sw.bind(model, sae)
    vectors = sw.melbo(model, PROMPTS, n_vectors=2, progress=False, **SETTINGS)
    session = MelboSession(binding, vectors=vectors, path=False, max_new_tokens=4)
    assert not session.saved and len(session.vectors) == 2
    session.train(1)
    expected = sw.melbo(model, PROMPTS, n_vectors=3, progress=False, **SETTINGS)
    assert torch.equal(session.vectors.vectors, expected.vectors)
    session.rename(2, "third")
    assert session.vectors[2].name == "third" and session.card(2)["name"] == "third"
    session.close()
    with pytest.raises(ValueError, match="not trained by sw.melbo with this model"):
        MelboSession(binding, vectors=vectors[1:], path=False)
    with pytest.raises(ValueError, match="source_layer, target_layer and radius"):
        MelboSession(binding, PROMPTS, settings={"radius": 2.0}, path=False)
    with pytest.raises(ValueError, match="unknown MELBO settings"):
        MelboSession(binding, PROMPTS, settings={**SETTINGS, "momentum": 0.9}, path=False)
    with pytest.raises(ValueError, match="vectors= were learned on other prompts"):
        MelboSession(binding, ["other"], vectors=vectors, path=False)
    with pytest.raises(ValueError, match="give vectors="):
        sw.MelboExplorer(model, sae, PROMPTS, path=False)
