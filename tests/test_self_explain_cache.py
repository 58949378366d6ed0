"""The self-explanation JSON cache heals: a file with the right key but a damaged body
(missing fields, wrong types, lists of the wrong length, non-finite numbers, scales other
than the key's) is a cache miss with a warning naming the file and the fault; the entry is
recomputed and the file overwritten. Real files, written by a real ``sw.self_explain`` run
on the model organism, damaged by hand."""

from __future__ import annotations

import json
import math
import warnings

import pytest

import saewidgets as sw
from saewidgets.self_explanation import cache

SCALES = [0.0, 2.0, 4.0, 8.0]
FEATURE = 47
RUN = dict(scales=SCALES, max_new_tokens=3, progress=False)


@pytest.fixture(scope="module")
def organism():
    return sw.organism()


@pytest.fixture(scope="module")
def reference(organism, tmp_path_factory):
    """A fresh run, its cache file's name and its text."""
    model, sae = organism
    folder = tmp_path_factory.mktemp("reference")
    with warnings.catch_warnings():
        warnings.simplefilter("error", cache.CacheEntryWarning)  # a sound run warns about nothing
        df = sw.self_explain(model, sae, FEATURE, cache_dir=folder, **RUN)
    (path,) = (folder / "self_explain").iterdir()
    return df, path.name, path.read_text()


def lm_head_calls(model):
    calls = []
    handle = model._module.lm_head.register_forward_hook(lambda module, args, output: calls.append(output.shape[0]))
    return calls, handle


def _set(entry, name, value):
    entry[name] = value


def _nan_in(name, i=1):
    def damage(entry):
        entry[name][i] = math.nan
    return damage


DAMAGES = {
    "missing self_similarity": (lambda e: e.pop("self_similarity"), "it lacks self_similarity"),
    "missing several": (lambda e: [e.pop(k) for k in ("entropy", "generated")], "it lacks entropy, generated"),
    "self_similarity a string": (lambda e: _set(e, "self_similarity", "high"), "self_similarity is a str, not a list"),
    "short cross_entropy": (lambda e: e["cross_entropy"].pop(), "cross_entropy has 3 values for 4 scales"),
    "long generated": (lambda e: e["generated"].append("extra"), "generated has 5 values for 4 scales"),
    "text in a metric": (lambda e: e["entropy"].__setitem__(2, "0.5"), "entropy[2] is '0.5', not a number"),
    "bool in a metric": (lambda e: e["entropy_change"].__setitem__(0, True), "entropy_change[0] is True, not a number"),
    "number in generated": (lambda e: e["generated"].__setitem__(1, 7), "generated[1] is 7, not a string"),
    "NaN metric": (_nan_in("self_similarity"), "self_similarity[1] is nan, not a finite number"),
    "inf metric": (lambda e: e["cross_entropy"].__setitem__(3, math.inf), "cross_entropy[3] is inf, not a finite number"),
    "other scales": (lambda e: e["scales"].__setitem__(2, 5.0), r"its scales differ from the ones asked for (scales[2] is 5.0, expected 4.0)"),
    "label a list": (lambda e: _set(e, "label", [47]), "label is [47], not a feature index"),
    "baseline text missing type": (lambda e: _set(e, "baseline_generated", None), "baseline_generated is a NoneType, not a string"),
    "key edited": (lambda e: _set(e, "key", "0" * 64), "its key is not the key of these settings"),
    "not an object": (lambda e: None, "it holds a JSON list, not an object"),
    "not JSON": (lambda e: None, "it is not valid JSON"),
}


@pytest.mark.slow
@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_entry_is_a_miss_with_a_warning_and_is_recomputed(organism, reference, tmp_path, damage):
    model, sae = organism
    fresh, name, text = reference
    path = tmp_path / "self_explain" / name
    path.parent.mkdir()
    if damage == "not an object":
        path.write_text(json.dumps([json.loads(text)]))
    elif damage == "not JSON":
        path.write_text(text[: len(text) // 2])
    else:
        entry = json.loads(text)
        DAMAGES[damage][0](entry)
        path.write_text(json.dumps(entry))  # json writes NaN / Infinity tokens, as a careless tool would
    calls, handle = lm_head_calls(model)
    try:
        with pytest.warns(cache.CacheEntryWarning) as caught:
            df = sw.self_explain(model, sae, FEATURE, cache_dir=tmp_path, **RUN)
    finally:
        handle.remove()
    (warning,) = [w for w in caught if issubclass(w.category, cache.CacheEntryWarning)]
    message = str(warning.message)
    assert str(path) in message and DAMAGES[damage][1] in message and message.endswith("recomputing it")
    assert len(calls) > 1  # generated again (one call is the prompt trace alone)
    assert json.loads(path.read_text()) == json.loads(text)  # overwritten with the recomputed entry
    for column in ("generated", "explanation", "chosen", "scale"):
        assert df[column].tolist() == fresh[column].tolist()
    # and healed: the next run reads it, silently, without generating
    calls, handle = lm_head_calls(model)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", cache.CacheEntryWarning)
            again = sw.self_explain(model, sae, FEATURE, cache_dir=tmp_path, **RUN)
    finally:
        handle.remove()
    assert calls == [1] and again["generated"].tolist() == fresh["generated"].tolist()


def test_sound_entry_is_a_hit(organism, reference, tmp_path):
    model, sae = organism
    fresh, name, text = reference
    path = tmp_path / "self_explain" / name
    path.parent.mkdir()
    path.write_text(text)
    calls, handle = lm_head_calls(model)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", cache.CacheEntryWarning)
            df = sw.self_explain(model, sae, FEATURE, cache_dir=tmp_path, **RUN)
    finally:
        handle.remove()
    assert calls == [1]  # the prompt trace only
    assert df["explanation"].tolist() == fresh["explanation"].tolist()


# -- the schema, directly ------------------------------------------------------------------------


def sound_entry(key="k" * 64, n=3):
    return {"key": key, "label": 3, "scales": [0.0, 1.0, 2.0][:n], "generated": ["a", "b", "c"][:n],
            "self_similarity": [0.0, 0.1, 0.2][:n], "entropy": [1.0, 1.1, 1.2][:n], "entropy_change": [0.0, 0.1, 0.2][:n],
            "cross_entropy": [2.0, 2.1, 2.2][:n], "zero_generated": "z", "baseline_generated": "b"}


def test_schema_checks_scales_against_the_key(tmp_path):
    key = cache.entry_key(model="m", scales=[0.0, 1.0, 2.0])
    entry = sound_entry(key)
    assert cache.entry_problem(entry, key) is None
    assert "scales[1] is 1.0, expected 1.5" in cache.entry_problem(entry, key, expected={"scales": [0.0, 1.5, 2.0]})
    other_key = cache.entry_key(model="m", scales=[0.0, 1.0])  # a key built from two scales
    assert "has 3 values for 2 scales" in cache.entry_problem({**entry, "key": other_key}, other_key)
    assert cache.entry_problem({**entry, "label": "direction 0"}, key) is None
    path = tmp_path / "f3.json"
    cache.save_entry(path, entry)
    assert cache.load_entry(path, key) == entry
    assert cache.load_entry(tmp_path / "missing.json", key) is None  # absent: a plain miss, no warning


def test_unwritable_entries_are_not_saved(tmp_path):
    key = cache.entry_key(model="m", scales=[0.0, 1.0, 2.0])
    entry = sound_entry(key)
    entry["cross_entropy"][0] = math.nan
    with pytest.warns(cache.CacheEntryWarning, match=r"not caching f3\.json: cross_entropy\[0\] is nan"):
        cache.save_entry(tmp_path / "f3.json", entry)
    assert not (tmp_path / "f3.json").exists()
