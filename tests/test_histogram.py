"""Logit-weight histograms split by token class, and their altair chart."""

from __future__ import annotations

import json

import altair as alt
import numpy as np
import pytest
import torch

import saewidgets as sw
from saewidgets.logit_lens.histogram import histogram_frame
from tiny_models import random_sae, tiny_model


@pytest.fixture(scope="module")
def binding():
    return sw.bind(tiny_model("gpt2"), random_sae(32, 64, layer=1))


@pytest.mark.parametrize("classes", ["starts_with_space", "case", "length", "first_letter", "token_type", "digits", ["digits", "lower"], None])
def test_counts_cover_the_vocabulary_once(binding, classes):
    hist = sw.logit_histogram(binding, 3, classes=classes, bins=25)
    json.dumps(hist)  # plain lists, floats and ints only
    assert len(hist["edges"]) == 26 and all(len(c) == 25 for c in hist["counts"].values())
    assert sum(sum(c) for c in hist["counts"].values()) == binding.vocab_size == hist["n_tokens"]
    assert set(hist["labels"]) == set(hist["counts"]) == set(hist["stats"])
    assert all(sum(hist["counts"][label]) == hist["stats"][label]["n"] > 0 for label in hist["labels"])


def test_counts_and_stats_equal_numpy_per_class(binding):
    w = sw.logit_weights(binding, 5)[0].double().numpy()
    hist = sw.logit_histogram(binding.model, binding.sae, 5, classes="case", bins=40)
    edges = np.array(hist["edges"])
    assert edges[0] == pytest.approx(w.min()) and edges[-1] == pytest.approx(w.max())
    labels = sw.token_classes(binding).labels("case")
    for label in hist["labels"]:
        values = w[np.asarray(labels == label)]
        expected, _ = np.histogram(values, bins=edges)
        assert hist["counts"][label] == expected.tolist()
        assert hist["stats"][label]["mean"] == pytest.approx(values.mean())
        assert hist["stats"][label]["std"] == pytest.approx(values.std())
        assert hist["stats"][label]["max"] == pytest.approx(values.max())


def test_custom_classes_directions_and_cosine(binding):
    classes = sw.token_classes(binding)
    classes.add_words("animals", ["cats", "dogs", "fox"])
    hist = sw.logit_histogram(binding, 2, classes="animals", token_classes=classes)
    assert hist["labels"] == ["animals", "not animals"] and hist["stats"]["animals"]["n"] == 3
    direction = binding.sae.W_dec[2] * 4.0
    cos = sw.logit_histogram(binding, direction, cosine=True)
    assert cos["feature"] is None and cos["cosine"] is True
    assert -1 <= cos["edges"][0] and cos["edges"][-1] <= 1


def test_bad_inputs(binding):
    with pytest.raises(ValueError, match="bins must be"):
        sw.logit_histogram(binding, 1, bins=0)
    with pytest.raises(ValueError, match="give the feature"):
        sw.logit_histogram(binding)
    with pytest.raises(ValueError, match="one feature"):
        sw.logit_histogram(binding, [1, 2])
    with pytest.raises(ValueError, match="unknown token class"):
        sw.logit_histogram(binding, 1, classes="nope")
    with pytest.raises(ValueError, match="cover 3 tokens"):
        sw.logit_histogram(binding, 1, token_classes=sw.token_classes(["a", "b", "c"]))


def test_chart_is_small_vega_lite_with_tooltips(binding):
    import vl_convert as vlc

    hist = sw.logit_histogram(binding, 3, classes="token_type", bins=60)
    chart = sw.logit_histogram_chart(hist)
    spec = chart.to_dict()  # raises MaxRowsError if raw values were sent
    rows = next(iter(spec["datasets"].values()))
    assert 0 < len(rows) <= 60 * len(hist["labels"]) and len(rows) == len(histogram_frame(hist))
    assert sum(r["count"] for r in rows) == binding.vocab_size
    assert {t["field"] for t in spec["encoding"]["tooltip"]} == {"group", "start", "end", "count"}
    assert spec["encoding"]["color"]["scale"]["domain"] == hist["labels"]
    assert spec["background"] == "transparent"
    # one spec: the explorer's histogram spec for the same counts
    from saewidgets.logit_lens.charts import histogram_payload

    payload = histogram_payload(hist, hist.get("feature"), "token_type")
    assert {k: spec[k] for k in ("mark", "data")} == {k: payload["spec"][k] for k in ("mark", "data")}
    assert spec["encoding"] == payload["spec"]["encoding"]
    vlc.vegalite_to_vega(spec)  # compiles offline


def test_chart_from_model_arguments_overlay_log(binding):
    with alt.data_transformers.enable("default", max_rows=5000):
        chart = sw.logit_histogram_chart(binding, feature=4, classes="starts_with_space", yscale="symlog", bins=30)
        spec = chart.to_dict()
    assert spec["encoding"]["y"]["stack"] is None and spec["encoding"]["y"]["scale"]["type"] == "symlog"
    assert spec["title"].startswith("Feature 4")
    big = sw.logit_histogram(binding, torch.randn(32), classes="first_letter", bins=200)
    assert len(histogram_frame(big)) <= binding.vocab_size
