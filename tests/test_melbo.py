"""sw.melbo: the optimisation against a plain-PyTorch reference, the constraints (norm R,
orthogonality), reproducibility, batching, padding, resuming from the store, and bad input."""

from __future__ import annotations

import inspect
import math
import sqlite3

import pytest
import torch

import saewidgets as sw
from saewidgets.melbo import MelboSettings, MelboStore, MelboVectors, objective
from saewidgets.melbo.train import initial_vector, orthonormal_basis
from tiny_models import tiny_model
from tools.references.melbo_hooks import initial_vector as reference_initial_vector
from tools.references.melbo_hooks import melbo_reference

PROMPTS = ["The quick brown fox jumps", "Hello", "Red, green and blue are colours"]
KW = dict(source_layer=0, target_layer=2, radius=4.0, steps=8, lr=0.2, progress=False)


@pytest.fixture(scope="module")
def gpt2():
    return tiny_model("gpt2")


@pytest.fixture(scope="module")
def organism():
    return sw.organism()


def test_public_names_and_callable_package():
    assert callable(sw.melbo) and "source_layer" in inspect.signature(sw.melbo).parameters
    assert sw.MelboVectors is MelboVectors and sw.MelboStore is MelboStore
    assert callable(sw.melbo_meaning) and sw.MelboExplorer.__name__ == "MelboExplorer"


def test_matches_the_plain_pytorch_reference(organism):
    """Same starting points, same algorithm: the vectors and objectives of hooks + autograd."""
    from saewidgets.model_organism import organism_raw

    model, _ = organism
    prompts = ["Yesterday I saw", "She told me about", "The story was about a"]
    out = sw.melbo(model, prompts, source_layer=1, target_layer=3, radius=8.0, n_vectors=2, steps=10, lr=1e-2,
                   prepend_bos=True, progress=False)
    raw, tok = organism_raw()
    ids = [[tok.bos_token_id] + tok.encode(p) for p in prompts]
    vectors, values = melbo_reference(raw, ids, source=1, target=3, radius=8.0, n_vectors=2, steps=10, lr=1e-2)
    torch.testing.assert_close(out.vectors, vectors, atol=1e-4, rtol=1e-4)
    assert out.objectives == pytest.approx(values, rel=1e-4)
    assert len(out.histories[0]) == 10 and out.histories[0][-1] > out.histories[0][0]  # it climbs
    assert torch.equal(initial_vector(128, 8.0, 0, 3), reference_initial_vector(128, 8.0, 0, 3))


def test_vectors_are_on_the_sphere_orthogonal_and_beat_random_vectors(gpt2):
    out = sw.melbo(gpt2, PROMPTS, n_vectors=4, **KW)
    assert len(out) == 4 and [d.name for d in out] == [f"MELBO {i}" for i in range(4)]
    V = out.vectors.double()
    torch.testing.assert_close(V.norm(dim=1), torch.full((4,), 4.0, dtype=torch.float64), atol=1e-4, rtol=0)
    gram = V @ V.T / 16.0
    assert (gram - torch.eye(4, dtype=torch.float64)).abs().max() < 1e-3
    g = torch.Generator().manual_seed(123)
    for k in range(4):  # random vectors of norm R where vector k was learned (orthogonal to those before)
        random = torch.randn(8, 32, generator=g)
        basis = orthonormal_basis(list(out.vectors[:k]))
        if basis is not None:
            random = random - random @ basis.T @ basis
        random = random / random.norm(dim=1, keepdim=True) * 4.0
        assert out.objectives[k] > max(out.objective_of(gpt2, random))
    assert out.objective_of(gpt2, out[0]) == pytest.approx([out.objectives[0]], rel=1e-5)
    d = out[1]
    assert isinstance(d, sw.Direction) and d.layer == 0 and d.site == "resid_pre"
    assert d.provenance["method"] == "melbo" and d.provenance["radius"] == 4.0 and d.provenance["index"] == 1
    assert out.hook == "blocks.0.hook_resid_pre"
    assert list(out.to_frame()["objective"]) == out.objectives
    assert isinstance(out[1:3], MelboVectors) and len(out[1:3]) == 2 and out[-1] is out.directions[-1]
    with pytest.raises(IndexError, match="4 vectors"):
        out[4]


def test_reproducible_and_each_vector_independent_of_how_many_follow(gpt2):
    one = sw.melbo(gpt2, PROMPTS, n_vectors=1, **KW)
    two = sw.melbo(gpt2, PROMPTS, n_vectors=2, **KW)
    assert torch.equal(one.vectors[0], two.vectors[0])
    other = sw.melbo(gpt2, PROMPTS, n_vectors=1, **{**KW, "seed": 1})
    assert not torch.allclose(other.vectors[0], one.vectors[0])


def test_batches_and_padding_do_not_change_the_result(gpt2):
    """Left padding is masked out: prompts in batches of one give the vectors of one batch."""
    together = sw.melbo(gpt2, PROMPTS, n_vectors=1, **KW)
    apart = sw.melbo(gpt2, PROMPTS, n_vectors=1, batch_size=1, **KW)
    torch.testing.assert_close(together.vectors, apart.vectors, atol=1e-4, rtol=1e-4)
    settings = together.settings
    each = [objective(gpt2, [p], together[0], settings)[0] for p in PROMPTS]
    assert sum(each) == pytest.approx(together.objectives[0], rel=1e-5)


def test_p_and_q_shape_the_objective(gpt2):
    s2 = MelboSettings.checked(3, source_layer=0, target_layer=2, radius=4.0, p=2.0, q=2.0)
    s1 = MelboSettings.checked(3, source_layer=0, target_layer=2, radius=4.0, p=2.0, q=1.0)
    assert s2.q == 2.0 and MelboSettings.checked(3, source_layer=0, target_layer=2, radius=1, p=3).q == 3.0
    v = initial_vector(32, 4.0, 0, 0)
    per_prompt = [objective(gpt2, [p], v, s1)[0] for p in PROMPTS]  # q = 1: sum of squares
    roots = objective(gpt2, PROMPTS, v, s2)[0]
    assert roots == pytest.approx(sum(math.sqrt(x) for x in per_prompt), rel=1e-5)


def test_remote_local_gives_the_same_vectors(gpt2):
    local = sw.melbo(gpt2, PROMPTS[:2], n_vectors=1, **{**KW, "steps": 3})
    serialised = sw.melbo(gpt2, PROMPTS[:2], n_vectors=1, remote="local", **{**KW, "steps": 3})
    torch.testing.assert_close(serialised.vectors, local.vectors, atol=1e-5, rtol=1e-5)


def test_resumes_from_the_store_exactly(gpt2, tmp_path):
    """Stopped mid-vector (by the callback, or Ctrl-C), the same call resumes from the checkpoint
    and gives the vectors of an uninterrupted run; more vectors continue the run."""
    path = tmp_path / "melbo.sqlite"
    straight = sw.melbo(gpt2, PROMPTS, n_vectors=3, **KW)

    def stop_at(vector, step, error):
        def on_step(info):
            if info.vector == vector and info.step == step:
                raise error
        return on_step

    with pytest.raises(RuntimeError, match="stop"):
        sw.melbo(gpt2, PROMPTS, n_vectors=3, path=path, checkpoint_every=2, on_step=stop_at(1, 5, RuntimeError("stop")),
                 **KW)
    store = MelboStore(path)
    (run,) = store.runs()
    assert run.n_vectors == 1 and store.progress(run.id).index == 1 and store.progress(run.id).step == 5
    with pytest.raises(KeyboardInterrupt):
        sw.melbo(gpt2, PROMPTS, n_vectors=3, path=path, on_step=stop_at(2, 3, KeyboardInterrupt()), **KW)
    assert store.runs()[0].n_vectors == 2 and store.progress(run.id).step == 3
    resumed = sw.melbo(gpt2, PROMPTS, n_vectors=3, path=path, **KW)
    torch.testing.assert_close(resumed.vectors, straight.vectors, atol=1e-6, rtol=0)
    assert resumed.objectives == pytest.approx(straight.objectives, rel=1e-6)
    assert len(resumed.histories[2]) == KW["steps"] and store.progress(run.id) is None

    calls = []
    hook = gpt2._module.register_forward_hook(lambda *a: calls.append(1))
    try:
        again = sw.melbo(gpt2, PROMPTS, n_vectors=2, path=path, **KW)  # all stored: only Z(0) runs
    finally:
        hook.remove()
    assert len(calls) == 1 and torch.equal(again.vectors, resumed.vectors[:2])
    more = sw.melbo(gpt2, PROMPTS, n_vectors=4, path=path, **KW)
    assert torch.equal(more.vectors[:3], resumed.vectors) and len(MelboStore(path).vectors(run.id)) == 4

    loaded = MelboVectors.load(path)  # no model needed
    assert torch.equal(loaded.vectors, more.vectors) and loaded.settings == more.settings
    assert loaded.prompts == PROMPTS and loaded.objectives == pytest.approx(more.objectives)
    other = sw.melbo(gpt2, PROMPTS, n_vectors=1, path=path, **{**KW, "radius": 2.0})  # another run, same file
    assert len(MelboStore(path).runs()) == 2 and other.run != more.run
    with pytest.raises(ValueError, match="2 MELBO runs"):
        MelboVectors.load(path)
    assert torch.equal(MelboVectors.load(path, run=other.run).vectors, other.vectors)


def test_saved_copies_and_damaged_files(gpt2, tmp_path):
    out = sw.melbo(gpt2, PROMPTS, n_vectors=2, **KW)
    path = tmp_path / "copy.sqlite"
    run = out.save(path)
    assert torch.equal(MelboVectors.load(path, run).vectors, out.vectors)
    resumed = sw.melbo(gpt2, PROMPTS, n_vectors=2, path=path, **KW)  # a saved result keeps its training key
    assert resumed.run == run and torch.equal(resumed.vectors, out.vectors)

    not_sqlite = tmp_path / "notes.txt"
    not_sqlite.write_text("hello")
    with pytest.raises(ValueError, match="not a MELBO store"):
        MelboStore(not_sqlite)
    with pytest.raises(ValueError, match="is a folder"):
        MelboStore(tmp_path)
    with sqlite3.connect(path) as con:
        con.execute("UPDATE melbo_vectors SET vector = ? WHERE idx = 1", (b"\x00" * 12,))
    with pytest.raises(ValueError, match="damaged"):
        MelboVectors.load(path)
    with sqlite3.connect(path) as con:
        con.execute("UPDATE melbo_vectors SET vector = ? WHERE idx = 1", (torch.full((32,), float("nan")).numpy().tobytes(),))
    with pytest.raises(ValueError, match="NaN"):
        MelboVectors.load(path)

    atlas = tmp_path / "atlas.sqlite"  # another SQLite file: the melbo_ tables join it
    with sqlite3.connect(atlas) as con:
        con.execute("CREATE TABLE features (id INTEGER PRIMARY KEY, label TEXT)")
        con.execute("INSERT INTO features VALUES (1, 'kept')")
    out.save(atlas)
    with sqlite3.connect(atlas) as con:
        assert con.execute("SELECT label FROM features").fetchall() == [("kept",)]
    assert len(MelboVectors.load(atlas)) == 2


@pytest.mark.parametrize("bad, message", [
    (dict(source_layer=3), "source_layer must be from 0 to 2"),
    (dict(target_layer=0), "target_layer must be a block after source_layer=0, from 1 to 3"),
    (dict(target_layer=4), "from 1 to 3"),
    (dict(radius=0), "radius"), (dict(radius=float("nan")), "radius"),
    (dict(n_vectors=33), "at most d_model=32"), (dict(n_vectors=0), "n_vectors"),
    (dict(steps=0), "steps"), (dict(lr=-1.0), "lr"), (dict(p=0), "p "), (dict(q=-2), "q "),
    (dict(seed=-1), "seed"), (dict(batch_size=0), "batch_size"), (dict(prepend_bos="yes"), "prepend_bos"),
    (dict(on_step=5), "on_step"), (dict(prompts=[]), "empty"), (dict(prompts=["ok", " "]), "prompt 1"),
    (dict(prompts=7), "a string or a list"), (dict(checkpoint_every=0), "checkpoint_every"),
])
def test_bad_input_is_refused_before_any_model_call(gpt2, bad, message):
    args = {**KW, "n_vectors": 1, **bad}
    prompts = args.pop("prompts", PROMPTS)
    calls = []
    hook = gpt2._module.register_forward_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(ValueError, match=message):
            sw.melbo(gpt2, prompts, **args)
    finally:
        hook.remove()
    assert calls == []


def test_context_length_is_checked_before_any_model_call(gpt2):
    with pytest.raises(ValueError, match="context of 128"):
        sw.melbo(gpt2, ["word " * 200], n_vectors=1, **KW)
