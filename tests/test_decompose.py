"""Sparse codes of directions: the SAE's encoder and gradient pursuit, on planted combinations."""

from __future__ import annotations

import pytest
import torch

import saewidgets as sw
from tiny_models import random_sae


@pytest.fixture(scope="module")
def sae():
    return random_sae(64, 512, layer=1, seed=3)


@pytest.mark.parametrize("k", [1, 3, 6])
def test_gradient_pursuit_recovers_a_planted_sparse_combination(sae, k):
    g = torch.Generator().manual_seed(k)
    features = torch.randperm(sae.d_sae, generator=g)[:k].tolist()
    weights = (torch.rand(k, generator=g) * 2 + 1).tolist()
    vector = sum(w * sae.W_dec[f] for f, w in zip(features, weights))
    code = sw.decompose(sae, vector, "ito", l0=k)
    assert set(code.features) == set(features)  # the right support, in k steps
    for f, w in zip(features, weights):  # refined on the support: the planted weights
        assert code.features[f] == pytest.approx(w, rel=1e-2)
    assert code.cosine > 0.999
    raw = sw.decomposition.gradient_pursuit(sae.W_dec.detach(), vector.detach(), k, refine=0)  # the k steps alone
    assert set(raw.nonzero().flatten().tolist()) == set(features)
    more = sw.decompose(sae, vector, "ito", l0=4 * k)  # a larger budget still reconstructs it
    assert more.relative_error < 1e-3 and set(features) <= set(more.features)
    assert list(code.features.values()) == sorted(code.features.values(), key=abs, reverse=True)
    torch.testing.assert_close(code.direction.vector, code.reconstruction, atol=1e-5, rtol=1e-5)
    assert code.direction.features == pytest.approx(code.features)


def test_encode_is_the_saes_encoder(sae):
    vector = torch.randn(64, generator=torch.Generator().manual_seed(0)) * 3
    code = sw.decompose(sae, sw.Direction(vector), "encode")
    acts = sae.encode(vector)
    assert set(code.features) == set(acts.nonzero().flatten().tolist())
    torch.testing.assert_close(code.reconstruction, acts @ sae.W_dec)


def test_bad_input(sae):
    with pytest.raises(ValueError, match="length d_in=64"):
        sw.decompose(sae, torch.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        sw.decompose(sae, torch.full((64,), float("nan")))
    with pytest.raises(ValueError, match="l0 must be"):
        sw.decompose(sae, torch.ones(64), l0=0)
    with pytest.raises(ValueError, match="unknown method"):
        sw.decompose(sae, torch.ones(64), "magic")
