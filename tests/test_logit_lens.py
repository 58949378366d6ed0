"""Logit weights and per-feature logit statistics, checked against literal reference code."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import saewidgets as sw
from saewidgets.logit_lens.core import norm_fold
from saewidgets.logit_lens.kinds import feature_kinds
from saewidgets.logit_lens.moments import moments as row_moments
from tiny_models import random_sae, tiny_model

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
    """SAELens analysis/feature_statistics.py get_stats_df, as published."""
    mean = projection.mean(dim=1, keepdim=True)
    diffs = projection - mean
    var = (diffs**2).mean(dim=1, keepdim=True)
    std = torch.pow(var, 0.5)
    zscores = diffs / std
    skews = torch.mean(torch.pow(zscores, 3.0), dim=1)
    kurtosis = torch.mean(torch.pow(zscores, 4.0), dim=1)
    return pd.DataFrame(
        {"mean": mean.numpy().squeeze(), "std": std.numpy().squeeze(), "skewness": skews.numpy(), "kurtosis": kurtosis.numpy()}
    )


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
