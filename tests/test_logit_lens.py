"""Logit weights, per-feature logit statistics and the one-pass table, checked against
float64 references written from the method statements."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import saewidgets as sw
from saewidgets.logit_lens.core import norm_fold
from saewidgets.logit_lens.kinds import feature_kinds
from saewidgets.logit_lens import logit_lens_table
from saewidgets.logit_lens.moments import chunk_statistics, chunk_statistics_torch
from saewidgets.logit_lens.moments import moments as row_moments
from tiny_models import random_sae, tiny_model, tiny_tokenizer

FAMILIES = ["gpt2", "llama", "gemma2", "qwen2", "phi3", "neox"]


def _randomise_final_norm(binding: sw.Binding, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    norm = binding.final_norm()
    with torch.no_grad():
        norm.weight.copy_(torch.rand(norm.weight.shape, generator=g) + 0.5)
        if getattr(norm, "bias", None) is not None:
            norm.bias.copy_(torch.randn(norm.bias.shape, generator=g))


@pytest.fixture(scope="module")
def gpt2():
    model = tiny_model("gpt2")
    binding = sw.bind(model, random_sae(32, 64, layer=1))
    _randomise_final_norm(binding)
    return binding


def reference_stats(projection: torch.Tensor) -> pd.DataFrame:
    """Population moments in float64 as methods.md section 1 states them: std = sqrt(mean((w-mu)^2)),
    skew = mean(z^3), kurtosis = mean(z^4) (plain), z = (w - mu) / std."""
    w = projection.double().numpy()
    mu = w.mean(axis=1, keepdims=True)
    std = np.sqrt(((w - mu) ** 2).mean(axis=1))
    z = (w - mu) / std[:, None]
    return pd.DataFrame({"mean": mu[:, 0], "std": std, "skewness": (z**3).mean(axis=1), "kurtosis": (z**4).mean(axis=1)})


# -- logit weights ---------------------------------------------------------------------------
def test_raw_weights_are_decoder_rows_times_unembedding(gpt2):
    W = sw.logit_weights(gpt2, [0, 5, 63], fold_norm=False)
    expected = gpt2.sae.W_dec[[0, 5, 63]] @ gpt2.model._module.lm_head.weight.T
    assert W.shape == (3, gpt2.vocab_size) and W.dtype == torch.float32
    torch.testing.assert_close(W, expected, rtol=1e-5, atol=1e-6)


def test_folded_layernorm_matches_literal_formula(gpt2):
    ln = gpt2.final_norm()
    d = gpt2.sae.W_dec[7]
    expected = ((d - d.mean()) * ln.weight) @ gpt2.unembedding()
    torch.testing.assert_close(sw.logit_weights(gpt2, 7)[0], expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_folded_weights_are_the_direct_effect_through_the_real_norm(family):
    """N(d) - N(0) through the model's own final norm, times W_U, is proportional to w."""
    model = tiny_model(family)
    binding = sw.bind(model, random_sae(32, 64, layer=1))
    _randomise_final_norm(binding, seed=1)
    norm, W_U = binding.final_norm(), binding.unembedding()
    with torch.no_grad():
        d = binding.sae.W_dec[3]
        direct = (norm(d[None]) - norm(torch.zeros(1, 32)))[0] @ W_U
    w = sw.logit_weights(binding, 3)[0]
    ratio = (direct @ w) / (w @ w)
    assert ratio > 0
    torch.testing.assert_close(direct, ratio * w, rtol=1e-3, atol=1e-5)


def test_gemma_gain_is_one_plus_weight():
    binding = sw.bind(tiny_model("gemma2"), random_sae(32, 64, layer=1))
    _randomise_final_norm(binding, seed=2)
    norm = binding.final_norm()
    gain, center = norm_fold(norm, 32)
    assert not center
    torch.testing.assert_close(gain, 1 + norm.weight.detach(), rtol=1e-5, atol=1e-6)
    d = binding.sae.W_dec[4]
    torch.testing.assert_close(sw.logit_weights(binding, 4)[0], (d * (1 + norm.weight)) @ binding.unembedding(),
                               rtol=1e-4, atol=1e-6)


def test_layernorm_and_rmsnorm_are_told_apart():
    for family, centres in [("gpt2", True), ("neox", True), ("llama", False), ("qwen2", False)]:
        binding = sw.bind(tiny_model(family), random_sae(32, 64, layer=1))
        _randomise_final_norm(binding, seed=3)
        gain, center = norm_fold(binding.final_norm(), 32)
        assert center is centres, family
        torch.testing.assert_close(gain, binding.final_norm().weight.detach(), rtol=1e-5, atol=1e-6)


def test_cosine_is_the_cosine_with_each_effective_column(gpt2):
    d = gpt2.sae.W_dec[[1, 2]] * torch.tensor([[3.0], [0.5]])
    W_U = gpt2.unembedding()
    raw = sw.logit_weights(gpt2, d, cosine=True, fold_norm=False)
    torch.testing.assert_close(raw, torch.nn.functional.normalize(d, dim=1) @ torch.nn.functional.normalize(W_U, dim=0),
                               rtol=1e-4, atol=1e-6)
    ln = gpt2.final_norm()
    W_eff = ln.weight[:, None] * W_U
    W_eff = W_eff - W_eff.mean(dim=0, keepdim=True)
    folded = sw.logit_weights(gpt2, d, cosine=True)
    expected = (d @ W_eff) / d.norm(dim=1, keepdim=True) / W_eff.norm(dim=0, keepdim=True)
    torch.testing.assert_close(folded, expected, rtol=1e-4, atol=1e-6)
    assert folded.abs().max() <= 1 + 1e-5


def test_binding_or_model_and_sae_and_directions_agree(gpt2):
    a = sw.logit_weights(gpt2.model, gpt2.sae, [2, 9])
    b = sw.logit_weights(gpt2, [2, 9])
    c = sw.logit_weights(gpt2, gpt2.sae.W_dec[[2, 9]].clone())
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)
    assert sw.logit_weights(gpt2, 2).shape == (1, gpt2.vocab_size)


def test_bad_inputs_raise_clear_errors(gpt2):
    with pytest.raises(ValueError, match="out of range"):
        sw.logit_weights(gpt2, 64)
    with pytest.raises(ValueError, match="empty"):
        sw.logit_weights(gpt2, [])
    with pytest.raises(ValueError, match="d_model=32"):
        sw.logit_weights(gpt2, torch.ones(31))
    with pytest.raises(ValueError, match="give the feature"):
        sw.logit_weights(gpt2)
    with pytest.raises(ValueError, match="no SAE"):
        sw.logit_weights(gpt2.model, None, 3)
    with pytest.raises(ValueError, match="different SAE"):
        sw.logit_weights(gpt2, random_sae(32, 64, layer=1), 3)
    with pytest.raises(ValueError, match="chunk_size"):
        sw.logit_stats(gpt2, chunk_size=0)
    with pytest.raises(ValueError, match="k must be"):
        sw.logit_stats(gpt2, k=-1)


# -- statistics -----------------------------------------------------------------------------
@pytest.mark.parametrize("cosine", [False, True])
def test_stats_match_the_reference_in_every_chunking(gpt2, cosine):
    projection = sw.logit_weights(gpt2, list(range(64)), cosine=cosine).double()
    ref = reference_stats(projection)
    stats = sw.logit_stats(gpt2, k=5, cosine=cosine, chunk_size=7, progress=False)
    assert list(stats.feature) == list(range(64))
    np.testing.assert_allclose(stats["mean"], ref["mean"], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(stats["std"], ref["std"], rtol=1e-4)
    np.testing.assert_allclose(stats["skew"], ref["skewness"], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(stats["kurtosis"], ref["kurtosis"], rtol=1e-3)
    np.testing.assert_allclose(stats["excess_kurtosis"], ref["kurtosis"] - 3, rtol=1e-3, atol=1e-3)
    top = projection.topk(5, dim=1)
    assert stats["top_ids"].tolist() == top.indices.tolist()
    np.testing.assert_allclose(np.array(stats["top_values"].tolist()), top.values.numpy(), rtol=1e-5, atol=1e-7)
    bottom = projection.topk(5, dim=1, largest=False)
    assert stats["bottom_ids"].tolist() == bottom.indices.tolist()
    strings = sw.token_classes(gpt2).strings
    assert stats["top_tokens"][0] == [strings[i] for i in top.indices[0].tolist()]


def test_stats_for_a_subset_and_without_tokens(gpt2):
    stats = sw.logit_stats(gpt2.model, gpt2.sae, [5, 1], k=0, progress=False)
    assert list(stats.feature) == [5, 1]
    assert stats["top_tokens"].tolist() == [[], []]
    full = sw.logit_stats(gpt2, progress=False).set_index("feature")
    np.testing.assert_allclose(stats["skew"], full.loc[[5, 1], "skew"], rtol=1e-4, atol=1e-6)


def test_moments_and_kinds_on_known_distributions():
    g = torch.Generator().manual_seed(0)
    V = 20000
    gaussian = torch.randn(V, generator=g)
    spikes = torch.randn(V, generator=g) * 0.2
    spikes[:400] += 5.0  # 2% of tokens strongly promoted
    halves = torch.randn(V, generator=g) * 0.3 + torch.where(torch.arange(V) % 2 == 0, 2.0, -2.0)
    weights = torch.stack([gaussian, spikes, -spikes, halves, torch.zeros(V)])
    mean, std, skew, kurt = row_moments(weights).numpy().T
    ref = reference_stats(weights[:4].double())
    np.testing.assert_allclose(skew[:4], ref["skewness"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(kurt[:4], ref["kurtosis"], rtol=1e-4)
    assert abs(kurt[0] - 3) < 0.2  # plain kurtosis: 3 for a Gaussian
    assert list(feature_kinds(skew, kurt)) == ["none", "prediction", "suppression", "partition", "none"]
    assert np.isnan(skew[4])


def test_random_decoder_rows_are_kind_none():
    """The random baseline: Gaussian decoder rows against real (tiny) unembeddings."""
    for family in ["gpt2", "llama"]:
        model = tiny_model(family)
        binding = sw.bind(model, random_sae(32, 64, layer=1))
        rows = torch.randn(256, 32, generator=torch.Generator().manual_seed(1))
        stats = sw.logit_stats(binding, rows, k=0, progress=False)
        assert (stats["kind"] == "none").all(), stats["kind"].value_counts()
        assert stats["skew"].abs().max() < 1.0


# -- large vocabularies: the striped extremes ----------------------------------------------
@pytest.fixture(scope="module")
def wide():
    """A GPT-2 with an 8,192-token unembedding (the tiny tokenizer covers the first 380 ids;
    the rest read as empty special tokens): large enough for the striped top-k path."""
    import transformers as tf

    torch.manual_seed(3)
    config = tf.GPT2Config(vocab_size=8192, n_embd=32, n_layer=2, n_head=4, n_positions=64)
    model = sw.load_model(tf.GPT2LMHeadModel(config).eval(), tokenizer=tiny_tokenizer())
    binding = sw.bind(model, random_sae(32, 48, layer=1))
    _randomise_final_norm(binding, seed=4)
    return binding


def test_extremes_and_moments_are_exact_on_hard_rows():
    g = torch.Generator().manual_seed(0)
    V = 50257
    w = torch.randn(12, V, generator=g)
    w[1, :3000] -= 20  # one tail far heavier than the other: the exact fallback
    w[2, :3000] += 20
    w[3] = 1.5  # constant
    w[4, :5], w[4, -3:] = 100.0, -100.0  # tied extremes, one in the tail of the striping
    w[5] = torch.round(w[5] * 2) / 2  # heavy ties
    w[6] *= 1e-6
    w[7] += 50.0  # a large mean
    means = w.double().mean(dim=1)
    sums, (top_v, top_i, bot_v, bot_i) = chunk_statistics(w, means, 10)
    ref_top, ref_bot = w.topk(10, dim=1), w.topk(10, dim=1, largest=False)
    assert torch.equal(top_v, ref_top.values) and torch.equal(bot_v, ref_bot.values)
    assert torch.equal(w.gather(1, top_i), top_v) and torch.equal(w.gather(1, bot_i), bot_v)
    assert all(len(set(row)) == 10 for row in top_i.tolist() + bot_i.tolist())
    c = w.double() - means[:, None]
    expected = torch.stack([(c**2).sum(1), (c**3).sum(1), (c**4).sum(1)], dim=1)
    torch.testing.assert_close(sums, expected, rtol=2e-5, atol=1e-6 * float(expected.abs().max()))
    # the torch path (accelerators) computes the same, here run on the CPU
    sums_t, (top_t, _, bot_t, _) = chunk_statistics_torch(w, means, 10)
    assert torch.equal(top_t, top_v) and torch.equal(bot_t, bot_v)
    torch.testing.assert_close(sums_t, expected, rtol=2e-5, atol=1e-6 * float(expected.abs().max()))


def test_stats_on_a_large_vocabulary_match_the_reference(wide):
    projection = sw.logit_weights(wide, list(range(48))).double()
    ref = reference_stats(projection)
    stats = sw.logit_stats(wide, k=7, chunk_size=10, progress=False)
    np.testing.assert_allclose(stats["std"], ref["std"], rtol=1e-5)
    np.testing.assert_allclose(stats["skew"], ref["skewness"], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(stats["kurtosis"], ref["kurtosis"], rtol=1e-4)
    np.testing.assert_allclose(stats["mean"], ref["mean"], rtol=1e-4, atol=1e-7)
    top, bottom = projection.topk(7, dim=1), projection.topk(7, dim=1, largest=False)
    assert stats["top_ids"].tolist() == top.indices.tolist()
    assert stats["bottom_ids"].tolist() == bottom.indices.tolist()


# -- one pass: statistics and enrichment together --------------------------------------------
@pytest.mark.parametrize("fixture, chunk", [("gpt2", 7), ("wide", 5), ("wide", None)])
def test_table_is_logit_stats_and_enrichment_in_one_pass(request, fixture, chunk):
    binding = request.getfixturevalue(fixture)
    classes = sw.token_classes(binding).select(["starts_with_space", "lower", "digits", "punctuation", "length_2"])
    table = logit_lens_table(binding, classes, k=6, chunk_size=chunk, progress=False)
    stats = sw.logit_stats(binding, k=6, chunk_size=chunk, progress=False)
    enrichment = sw.enrichment(binding, None, classes, chunk_size=chunk, progress=False)
    pd.testing.assert_frame_equal(table[list(stats.columns)], stats)  # the same numbers, bit for bit
    assert table.attrs["kind_thresholds"] == stats.attrs["kind_thresholds"]
    es = enrichment.pivot(index="feature", columns="set", values="es")
    ks = enrichment.pivot(index="feature", columns="set", values="log10_ks_p")
    for name in classes:
        assert np.array_equal(table[f"es:{name}"].to_numpy(), es[name].to_numpy()), name
    assert list(table.columns) == [*stats.columns, *[f"es:{n}" for n in classes], "top_class", "top_class_es",
                                   "top_class_log10_ks_p"]
    best = ks[classes.names].to_numpy().argmin(axis=1)
    assert table["top_class"].tolist() == [classes.names[i] for i in best]
    np.testing.assert_allclose(table["top_class_log10_ks_p"], ks[classes.names].to_numpy().min(axis=1), rtol=1e-12)
    assert table.attrs["class_sizes"] == {n: len(classes.ids(n)) for n in classes}


def test_table_inputs_progress_and_errors(gpt2):
    calls = []
    table = logit_lens_table(gpt2.model, gpt2.sae, ["digits", "lower"], features=[5, 1], chunk_size=1,
                             progress=lambda done, total: calls.append((done, total)))
    assert table["feature"].tolist() == [5, 1] and calls == [(1, 2), (2, 2)]
    by_binding = logit_lens_table(gpt2, ["digits", "lower"], features=[5, 1], progress=False)
    pd.testing.assert_frame_equal(table, by_binding)
    default = sw.logit_lens_table(gpt2, progress=False)  # every feature, the default classes (public name)
    assert len(default) == gpt2.d_sae and "es:starts_with_space" in default
    assert not default.filter(like="es:").isna().any().any()
    with pytest.raises(ValueError, match="sets must be"):
        logit_lens_table(gpt2, 3.5, progress=False)
    with pytest.raises(ValueError, match="unknown token class 'nope'"):
        logit_lens_table(gpt2, ["nope"], progress=False)
    with pytest.raises(ValueError, match="k must be"):
        logit_lens_table(gpt2, k=-2, progress=False)
    with pytest.raises(ValueError, match="out of range"):
        logit_lens_table(gpt2, features=[64], progress=False)


def test_non_finite_inputs_are_refused(gpt2):
    direction = gpt2.sae.W_dec[0].clone()
    direction[3] = float("nan")
    with pytest.raises(ValueError, match=r"direction\(s\) \[0\] contain NaN"):
        logit_lens_table(gpt2, ["digits"], features=direction, progress=False)
    sae = random_sae(32, 64, layer=1)
    with torch.no_grad():
        sae.W_dec[9, 2] = float("inf")
    broken = sw.bind(gpt2.model, sae)
    for call in (lambda: sw.logit_stats(broken, [3, 9], progress=False),
                 lambda: logit_lens_table(broken, ["digits"], features=[3, 9], progress=False)):
        with pytest.raises(ValueError, match=r"features \[9\] have NaN or infinite"):
            call()
    with pytest.raises(ValueError, match="NaN or infinite"):
        sw.enrichment(broken, [9], ["digits"], progress=False)
