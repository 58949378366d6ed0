"""sw.collect_activations and sw.Atlas: exact statistics, examples, search, labels, files, resuming."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import saewidgets as sw
from saewidgets.atlas import AtlasFileError
from saewidgets.engine import Read, Row, trace
from tiny_models import random_sae, tiny_model

REPO = Path(__file__).resolve().parents[1]

DOCS = [
    "The quick brown fox jumps over the lazy dog. " * 3,
    "Hello World! The year 1999 had 365 days, and 2024 had 366.",
    "Red, green and BLUE are colours; cats and dogs are animals (mostly).",
    "She said: \"Repeat after me\" - one, two, three.",
] * 6 + [f"Document {i}: the fox and the dog met {i} times." for i in range(30)]


@pytest.fixture(scope="module")
def tiny():
    model = tiny_model("gpt2", d_model=32, n_layers=3)
    sae = random_sae(32, 48, layer=1, seed=3, architecture="standard")
    return model, sae


def dense_acts(model, sae, docs, seq_len=32):
    """Every counted token's activations, the slow and obvious way (a reference)."""
    binding = sw.bind(model, sae)
    tok = model.tokenizer
    out = []
    for doc in docs:
        ids = tok(doc, add_special_tokens=False)["input_ids"]
        for start in range(0, len(ids), seq_len - 1):
            row = [tok.bos_token_id, *ids[start:start + seq_len - 1]]
            read = Read("h", binding.layer, binding.site, positions="all")
            h = trace(model, [Row(row)], [read]).reads["h"][0]
            out.append(sae.encode(h)[1:].detach())
    return torch.cat(out)


def test_statistics_and_top_examples_are_exact(tiny, tmp_path):
    model, sae = tiny
    atlas = sw.collect_activations(model, sae, DOCS, tmp_path / "a.sqlite", k=5, context=(3, 2), seq_len=32,
                                   batch_size=7, progress=False)
    acts = dense_acts(model, sae, DOCS)
    stats = atlas.stats().set_index("feature")
    assert atlas.n_tokens == acts.shape[0]
    fired = (acts > 0).sum(0).numpy()
    np.testing.assert_array_equal(stats["n_fired"].to_numpy(), fired)
    np.testing.assert_allclose(stats["frequency"].to_numpy(), fired / acts.shape[0])
    np.testing.assert_allclose(stats["max_act"].to_numpy(), acts.max(0).values.numpy(), rtol=1e-5, atol=1e-6)
    mean = np.where(fired > 0, acts.sum(0).numpy() / np.maximum(fired, 1), 0)
    np.testing.assert_allclose(stats["mean_act"].to_numpy(), mean, rtol=1e-4, atol=1e-6)
    for f in range(sae.d_sae):
        ex = atlas.examples(f)
        hist = atlas.histogram(f)
        assert sum(hist["counts"]) == fired[f]
        if fired[f] == 0:
            assert ex.empty
            continue
        assert list(ex["value"]) == sorted(ex["value"], reverse=True)  # strongest first
        assert ex["value"].iloc[0] == pytest.approx(float(acts[:, f].max()), rel=1e-5)
        assert hist["edges"][-1] >= ex["value"].iloc[0] > hist["edges"][-2]
        for row in ex.itertuples():
            assert len(row.tokens) == len(row.acts) == len(row.token_ids) <= 6
            assert row.acts[row.peak] == pytest.approx(row.value, rel=1e-6)
            assert max(row.acts) == pytest.approx(row.value, rel=1e-3)  # the rest of the window is float16
            assert row.text == "".join(row.tokens)
    # quantile samples lie in their intervals
    q = pd.concat([atlas.examples(f, "quantile") for f in range(sae.d_sae)])
    assert len(q) > 0
    assert ((q["value"] >= q["low"] - 1e-6) & (q["value"] <= q["high"] + 1e-6)).all()
    atlas.close()


def test_results_do_not_depend_on_the_batch_size(tiny, tmp_path):
    model, sae = tiny
    a = sw.collect_activations(model, sae, DOCS, tmp_path / "a.sqlite", k=4, seq_len=24, batch_size=3, progress=False)
    b = sw.collect_activations(model, sae, DOCS, tmp_path / "b.sqlite", k=4, seq_len=24, batch_size=50,
                               progress=False)
    pd.testing.assert_frame_equal(a.stats().drop(columns="mean_act"), b.stats().drop(columns="mean_act"))
    for f in range(0, sae.d_sae, 5):
        assert atlas_examples(a, f) == atlas_examples(b, f)
        assert a.histogram(f) == b.histogram(f)


def atlas_examples(atlas, f):
    frame = atlas.examples(f, "all")
    return sorted(zip(frame["kind"], frame["doc"], frame["position"], np.round(frame["value"], 5)))


def test_memory_is_bounded_whatever_the_corpus_size(tiny):
    from saewidgets.atlas import collect as C
    from saewidgets.atlas.corpus import open_corpus
    from saewidgets.atlas.state import State

    model, sae = tiny
    binding = sw.bind(model, sae)
    settings = C._settings(binding, 5, 4, 32, 4, 2)
    sizes = []
    for copies in (1, 10):
        state = State(sae.d_sae, settings)
        for batch in C._batches(open_corpus(DOCS * copies), binding, settings, 0, 16):
            C.run_batch(binding, batch, settings, state, False)
        dense = sum(a.nbytes for n, a in state.arrays().items() if not n.startswith(("pairs", "tokens")))
        sparse = state.pairs.codes.size + state.tokens.codes.size
        sizes.append((dense, sparse, state.n_tokens))
    assert sizes[1][2] == 10 * sizes[0][2]
    assert sizes[1][0] == sizes[0][0]  # the same arrays for 10x the tokens
    assert sizes[1][1] <= 2 * (settings.pair_capacity + settings.token_capacity) * sae.d_sae


def test_remote_local_gives_the_same_atlas_and_sends_back_little(tiny, tmp_path):
    from saewidgets.atlas import collect as C
    from saewidgets.atlas.corpus import open_corpus
    from saewidgets.atlas.state import State
    from saewidgets.atlas.summary import BatchSummary

    model, sae = tiny
    local = sw.collect_activations(model, sae, DOCS[:12], tmp_path / "l.sqlite", k=4, seq_len=32, progress=False)
    remote = sw.collect_activations(model, sae, DOCS[:12], tmp_path / "r.sqlite", k=4, seq_len=32, remote="local",
                                    progress=False)
    pd.testing.assert_frame_equal(local.stats(), remote.stats(), rtol=1e-5)
    # what crosses per token, against the residual stream it replaces (float32)
    binding = sw.bind(model, sae)
    settings = C._settings(binding, 4, (10, 5), 32, 10, 3)
    state = State(sae.d_sae, settings)
    batches = list(C._batches(open_corpus(DOCS), binding, settings, 0, 16))
    C.run_batch(binding, batches[0], settings, state, False)
    ids, counted = C.padded(batches[1], 0)
    summary = BatchSummary(sae, torch.tensor([c.index for c in batches[1]]), ids, counted, state.ranges,
                           state.top_threshold(), state.q_threshold().float(), 4, 10, 5, settings.groups, 64, 4,
                           binding.vocab_size)
    h = trace(model, [Row(list(c.ids)) for c in batches[1]], [Read("h", 1, positions="all")]).reads["h"]
    per_token = C.bytes_per_token(summary(h, counted), int(counted.sum()))
    assert per_token < 4 * binding.d_model * 20  # bounded; the benchmark reports the measured ratio


def test_corpus_sources(tiny, tmp_path):
    import datasets

    model, sae = tiny
    docs = DOCS[:8]
    (tmp_path / "c.txt").write_text("\n".join(docs) + "\n\n")
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps({"text": d, "id": i}) for i, d in enumerate(docs)))
    pd.DataFrame({"body": docs}).to_parquet(tmp_path / "c.parquet")
    folder = tmp_path / "dataset"
    folder.mkdir()
    (folder / "train.jsonl").write_text("\n".join(json.dumps({"text": d}) for d in docs))
    reference = sw.collect_activations(model, sae, docs, tmp_path / "ref.sqlite", k=3, progress=False).stats()
    sources = {
        "txt": (tmp_path / "c.txt", {}),
        "jsonl": (tmp_path / "c.jsonl", {}),
        "parquet": (tmp_path / "c.parquet", {"text_field": "body"}),
        "dataset object": (datasets.Dataset.from_dict({"text": docs}), {}),
        "streamed dataset object": (datasets.Dataset.from_dict({"text": docs}).to_iterable_dataset(), {}),
        "dataset by name (a local folder, streamed)": (str(folder), {}),
    }
    for name, (source, kw) in sources.items():
        atlas = sw.collect_activations(model, sae, source, tmp_path / f"{len(name)}-{name[:3]}.sqlite", k=3,
                                       progress=False, **kw)
        pd.testing.assert_frame_equal(atlas.stats(), reference, obj=name)
        atlas.close()


def test_bad_inputs_are_clear_errors(tiny, tmp_path):
    model, sae = tiny
    path = tmp_path / "x.sqlite"
    with pytest.raises(ValueError, match="corpus= is required"):
        sw.collect_activations(model, sae, None, path)
    with pytest.raises(ValueError, match="empty"):
        sw.collect_activations(model, sae, [], path)
    with pytest.raises(ValueError, match=r"corpus\[1\] is int"):
        sw.collect_activations(model, sae, ["a", 3], path)
    with pytest.raises(ValueError, match="one-shot iterator"):
        sw.collect_activations(model, sae, (d for d in DOCS), path)
    with pytest.raises(ValueError, match="does not exist"):
        sw.collect_activations(model, sae, str(tmp_path / "missing.txt"), path)
    with pytest.raises(ValueError, match="k must be"):
        sw.collect_activations(model, sae, DOCS, path, k=0)
    with pytest.raises(ValueError, match="context must be"):
        sw.collect_activations(model, sae, DOCS, path, context="wide")
    with pytest.raises(ValueError, match="batch_size"):
        sw.collect_activations(model, sae, DOCS, path, batch_size=-1)
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\nnot json\n')
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        sw.collect_activations(model, sae, tmp_path / "bad.jsonl", path)
    atlas = sw.collect_activations(model, sae, DOCS[:4], path, k=3, progress=False)
    atlas.close()
    with pytest.raises(ValueError, match="other settings"):
        sw.collect_activations(model, sae, DOCS[:4], path, k=4, progress=False)
    other = random_sae(32, 40, layer=1, seed=5)
    with pytest.raises(ValueError, match="another model or SAE"):
        sw.collect_activations(model, other, DOCS[:4], path, k=3, progress=False)
    atlas = sw.Atlas.open(path)
    with pytest.raises(ValueError, match="out of range"):
        atlas.examples(48)
    with pytest.raises(ValueError, match="kind must be"):
        atlas.examples(1, "best")
    with pytest.raises(ValueError, match="label must be a string"):
        atlas.set_label(1, 5)
    atlas.close()


def test_schema_versions_and_foreign_files_are_refused_clearly(tiny, tmp_path):
    model, sae = tiny
    path = tmp_path / "a.sqlite"
    sw.collect_activations(model, sae, DOCS[:4], path, k=3, progress=False).close()
    for version, message in ((99, "newer than this saewidgets reads"), (0, "older than any this saewidgets")):
        copy = tmp_path / f"v{version}.sqlite"
        copy.write_bytes(path.read_bytes())
        db = sqlite3.connect(copy)
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (json.dumps(version),))
        db.commit()
        db.close()
        with pytest.raises(AtlasFileError, match=message):
            sw.Atlas.open(copy)
    foreign = tmp_path / "other.sqlite"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    with pytest.raises(AtlasFileError, match="not a saewidgets atlas"):
        sw.Atlas.open(foreign)
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(AtlasFileError, match="not an atlas"):
        sw.Atlas.open(tmp_path / "junk.sqlite")
    with pytest.raises(FileNotFoundError, match="collect one"):
        sw.Atlas.open(tmp_path / "nothing.sqlite")


def test_labels_explanations_directions_and_files_round_trip(tiny, tmp_path):
    model, sae = tiny
    atlas = sw.collect_activations(model, sae, DOCS, tmp_path / "a.sqlite", k=3, progress=False)
    atlas.set_label(3, "foxes <b>and</b> dogs")
    atlas.set_notes(3, "fires on animals")
    atlas.set_label(4, "years")
    assert atlas.label(3) == "foxes <b>and</b> dogs" and atlas.notes(3) == "fires on animals"
    assert atlas.label(5) == ""
    atlas.set_label(3, "foxes")  # the note is kept
    assert atlas.notes(3) == "fires on animals"
    assert atlas.search("foxes")["feature"].iloc[0] == 3
    assert atlas.search("animals")["feature"].iloc[0] == 3  # a note
    neuronpedia = [{"modelId": "gpt2-small", "layer": "1-res", "index": "7", "description": "numbers and years",
                    "explanationModelName": "gpt-4o-mini", "typeName": "oai_token-act-pair",
                    "scores": [{"value": 0.61}]},
                   {"modelId": "gpt2-small", "layer": "1-res", "index": "9", "description": "punctuation"}]
    (tmp_path / "np.json").write_text(json.dumps(neuronpedia))
    assert atlas.import_explanations(tmp_path / "np.json") == 2
    table = pd.DataFrame({"feature": [11], "explanation": ["quotes"], "score": [0.3]})
    table.to_csv(tmp_path / "e.csv", index=False)
    table.assign(feature=[12]).to_parquet(tmp_path / "e.parquet")
    assert atlas.import_explanations(tmp_path / "e.csv", source="csv") == 1
    assert atlas.import_explanations(tmp_path / "e.parquet") == 1
    ex = atlas.explanations()
    assert set(ex["feature"]) == {7, 9, 11, 12}
    assert ex.set_index("feature").loc[7, "source"] == "neuronpedia:gpt-4o-mini (oai_token-act-pair)"
    assert ex.set_index("feature").loc[7, "score"] == pytest.approx(0.61)
    assert atlas.search("years")["feature"].tolist()[:2] == [4, 7]  # the label, then the explanation
    out = atlas.export_explanations(tmp_path / "out.json")
    records = json.loads(out.read_text())
    assert {r["index"] for r in records} >= {"3", "7", "9"}
    fresh = sw.collect_activations(model, sae, DOCS, tmp_path / "b.sqlite", k=3, progress=False)
    assert fresh.import_explanations(out) == len(records)
    atlas.export_stats(tmp_path / "stats.parquet")
    atlas.export_stats(tmp_path / "stats.csv")
    assert len(pd.read_parquet(tmp_path / "stats.parquet")) == sae.d_sae
    assert pd.read_csv(tmp_path / "stats.csv")["label"].fillna("").tolist()[3] == "foxes"

    d = sw.Direction.feature(sae, 3, 2.0) + sw.Direction(torch.randn(32), name="noise")
    d.name = "mix"
    atlas.save_direction(d)
    back = atlas.directions()["mix"]
    torch.testing.assert_close(back.vector, d.vector.float())
    assert back.name == "mix"
    with pytest.raises(ValueError, match="sw.Direction"):
        atlas.save_direction(torch.zeros(32))

    copy = atlas.copy_to(tmp_path / "share.sqlite")
    atlas.close()
    shared = sw.Atlas.open(copy, readonly=True)
    assert shared.label(3) == "foxes" and len(shared.stats()) == sae.d_sae
    with pytest.raises(ValueError, match="read-only"):
        shared.set_label(1, "x")
    assert not Path(str(copy) + "-wal").exists()


def _python(code: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}"}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_a_label_survives_a_killed_kernel(tiny, tmp_path):
    model, sae = tiny
    path = tmp_path / "a.sqlite"
    sw.collect_activations(model, sae, DOCS[:4], path, k=3, progress=False).close()
    proc = _python(f"""
        import os, saewidgets as sw
        atlas = sw.Atlas.open({str(path)!r})
        atlas.set_label(2, "written before the crash")
        print("set", flush=True)
        os.kill(os.getpid(), 9)
    """)
    proc.wait(120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    assert sw.Atlas.open(path).label(2) == "written before the crash"


def test_a_killed_collection_resumes_counting_nothing_twice(tmp_path):
    path = tmp_path / "killed.sqlite"
    setup = textwrap.dedent("""
        import torch, saewidgets as sw
        from tiny_models import random_sae, tiny_model
        torch.set_num_threads(1)
        model = tiny_model("gpt2", d_model=32, n_layers=3)
        sae = random_sae(32, 48, layer=1, seed=3, architecture="standard")
        docs = [f"Document {i}: the quick brown fox {i % 7} jumps over {i * 3} lazy dogs." for i in range(3000)]
        kw = dict(k=5, seq_len=32, batch_size=4, checkpoint_every=0, progress=False, logit_stats=False)
    """)
    proc = _python(setup + f"\nsw.collect_activations(model, sae, docs, {str(path)!r}, **kw)\n")
    progress = 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if path.exists():
            try:
                db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
                row = db.execute("SELECT value FROM meta WHERE key = 'progress'").fetchone()
                db.close()
            except sqlite3.Error:
                continue
            progress = json.loads(row[0])["chunks"] if row else 0
            if progress >= 40:
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait(60)
    assert proc.returncode == -signal.SIGKILL, f"the collection was not killed midway: {proc.stderr.read()[-2000:]}"
    db = sqlite3.connect(path)
    status = json.loads(db.execute("SELECT value FROM meta WHERE key = 'status'").fetchone()[0])
    saved = json.loads(db.execute("SELECT value FROM meta WHERE key = 'progress'").fetchone()[0])
    db.close()
    assert status == "collecting" and 40 <= saved["chunks"] < 3000

    resumed = tmp_path / "resumed.json"
    fresh = tmp_path / "fresh.sqlite"
    summary = textwrap.dedent("""
        def summary(atlas):
            stats = atlas.stats()
            examples = [sorted(zip(e["kind"], e["doc"], e["position"], e["value"].round(5)))
                        for e in (atlas.examples(f, "all") for f in range(0, 48, 3))]
            return {"n_tokens": atlas.n_tokens, "n_fired": stats["n_fired"].tolist(),
                    "max_act": stats["max_act"].round(6).tolist(), "examples": examples,
                    "hist": [atlas.histogram(f)["counts"] for f in range(48)]}
    """)
    code = setup + summary + textwrap.dedent(f"""
        import json
        a = sw.collect_activations(model, sae, docs, {str(path)!r}, **kw)
        b = sw.collect_activations(model, sae, docs, {str(fresh)!r}, **kw)
        json.dump([summary(a), summary(b)], open({str(resumed)!r}, "w"))
    """)
    proc = _python(code)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    a, b = json.loads(resumed.read_text())
    assert a == b  # the resumed atlas counts every token exactly once, like an uninterrupted run
    assert a["n_tokens"] > 0
