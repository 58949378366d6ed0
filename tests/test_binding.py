"""sw.bind: validation, caching, what a Binding reads, and residual-stream edits through
nnsight, locally and with remote="local" (nnsight's serialisation path, standing in for NDIF)."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import torch

import saewidgets as sw
from tiny_models import random_sae, tiny_hf_model, tiny_model

PROMPTS = ["The quick brown fox jumps over", "Hello"]


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def family(request):
    hf, tok = tiny_hf_model(request.param)
    return hf, sw.load_model(hf, tokenizer=tok)


@pytest.fixture(scope="module")
def gpt2():
    return tiny_model("gpt2")


@pytest.fixture(scope="module")
def binding(gpt2):
    return sw.bind(gpt2, random_sae(32, 64, layer=1))


# -- validation ------------------------------------------------------------------------------


def test_width_mismatch_names_both_widths(gpt2):
    with pytest.raises(ValueError, match=r"d_in=16 but the model's residual stream at resid_pre\[1\] has width 32"):
        sw.bind(gpt2, random_sae(16, 64, layer=1))


def test_missing_layer_names_the_valid_range(gpt2):
    message = r"layer 3 does not exist: this model has 3 blocks \(valid layers 0..2\)"
    with pytest.raises(ValueError, match=message):
        sw.bind(gpt2, random_sae(32, 64, layer=3))
    with pytest.raises(ValueError, match=message):
        sw.bind(gpt2, random_sae(32, 64, layer=0), hook="blocks.3.hook_resid_post")


def test_sae_without_hook_and_missing_sae(gpt2):
    sae = sw.SAE(torch.zeros(32, 8), torch.zeros(8, 32))
    with pytest.raises(ValueError, match="the SAE has no hook point"):
        sw.bind(gpt2, sae)
    assert sw.bind(gpt2, sae, hook="blocks.2.hook_resid_post").hook == sw.HookPoint(2, "resid_post")
    with pytest.raises(ValueError, match="needs an SAE"):
        sw.bind(gpt2)


def test_feature_indices_are_checked(binding):
    for bad in (64, -1, 10**9):
        with pytest.raises(ValueError, match=rf"feature {bad} is out of range: this SAE has 64 features \(valid indices 0..63\)"):
            binding.check_feature(bad)
    for bad in (2.0, True, "3", torch.tensor([1, 2]), None):
        with pytest.raises(ValueError, match="feature must be an integer index"):
            binding.check_feature(bad)
    assert binding.check_feature(torch.tensor(3)) == 3 and binding.check_feature(np.int64(5)) == 5
    assert binding.check_features([1, np.int64(2), torch.tensor(3)]) == [1, 2, 3]
    assert binding.check_features(torch.tensor([[4, 5]])) == [4, 5]
    assert binding.check_features(np.arange(3)) == [0, 1, 2] and binding.check_features(7) == [7]
    with pytest.raises(ValueError, match="feature 99 is out of range"):
        binding.check_features([1, 99])
    with pytest.raises(ValueError, match="feature 64 is out of range"):
        binding.direction(64)


def test_layer_indices_are_checked(binding):
    assert binding.check_layer(2) == 2
    with pytest.raises(ValueError, match=r"layer 3 is out of range: this model has 3 blocks \(valid indices 0..2\)"):
        binding.check_layer(3)
    with pytest.raises(ValueError, match=r"probe layer -1 is out of range"):
        binding.check_layer(-1, "probe layer")
    with pytest.raises(ValueError, match="layer 5 is out of range"):
        binding.resid(layer=5)
    with pytest.raises(ValueError, match="unknown residual-stream site 'mlp_out'"):
        binding.resid(site="mlp_out")


# -- caching ---------------------------------------------------------------------------------


def test_bind_returns_the_same_binding_per_pair(gpt2, binding):
    sae = binding.sae
    assert sw.bind(gpt2, sae) is binding
    assert sw.bind(binding) is binding and sw.bind(gpt2, binding) is binding
    other_hook = sw.bind(gpt2, sae, hook="blocks.2.hook_resid_post")
    assert other_hook is not binding and other_hook.layer == 2 and other_hook.site == "resid_post"
    other = random_sae(32, 16, layer=0, seed=1)
    rebound = sw.bind(binding, other)
    assert rebound.model is gpt2 and rebound.sae is other and rebound.layer == 0
    from_dict = sw.bind(gpt2, {"W_enc": other.W_enc, "W_dec": other.W_dec}, hook="blocks.0.hook_resid_pre")
    assert torch.equal(from_dict.sae.W_dec, other.W_dec)


def test_bindings_keep_nothing_alive():
    model, sae = tiny_model("gpt2"), random_sae(32, 64)
    binding = sw.bind(model, sae)
    binding.token_strings()
    refs = [weakref.ref(model), weakref.ref(sae), weakref.ref(binding)]
    del model, sae, binding
    gc.collect()
    assert [ref() is None for ref in refs] == [True, True, True]


# -- reads -----------------------------------------------------------------------------------


def test_binding_reads(gpt2, binding):
    assert (binding.n_layers, binding.d_model, binding.d_sae, binding.layer, binding.site) == (3, 32, 64, 1, "resid_pre")
    assert binding.tokenizer is gpt2.tokenizer and binding.device == torch.device("cpu")
    assert binding.layout.family == "gpt2" and "gpt2 model, 3 layers" in repr(binding)
    assert torch.equal(binding.direction(5), binding.sae.W_dec[5])
    raw = torch.randn(32, dtype=torch.float64)
    assert torch.equal(binding.direction(raw), raw.float())
    with pytest.raises(ValueError, match=r"length d_model=32, got shape \(31,\)"):
        binding.direction(torch.randn(31))


def test_token_strings(binding):
    strings = binding.token_strings()
    tok = binding.tokenizer
    assert len(strings) == binding.vocab_size == binding.unembedding().shape[1]
    assert strings == [tok.decode([i]) for i in range(len(tok))] + [""] * (binding.vocab_size - len(tok))
    assert binding.token_strings() is strings


def test_unembedding_of_an_undispatched_model(tmp_path):
    hf, tok = tiny_hf_model("gpt2")
    hf.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    binding = sw.bind(sw.load_model(tmp_path, dispatch=False), random_sae(32, 8))
    assert binding.vocab_size == hf.config.vocab_size
    with pytest.raises(ValueError, match="not loaded yet .meta device.*dispatch=True"):
        binding.unembedding()


# -- residual edits --------------------------------------------------------------------------


def reference_logits(hf, tokenizer, block_index, site, v):
    """The edit done with a plain PyTorch hook on the transformers model."""
    ids = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    positions = (ids["attention_mask"].cumsum(-1) - 1).clamp_min(0)
    block = (hf.transformer.h if hasattr(hf, "transformer") else hf.model.layers)[block_index]
    if site == "resid_pre":
        handle = block.register_forward_pre_hook(lambda mod, args, kwargs: ((args[0] + v, *args[1:]), kwargs), with_kwargs=True)
    else:
        handle = block.register_forward_hook(lambda mod, args, out: (out[0] + v, *out[1:]) if isinstance(out, tuple) else out + v)
    try:
        with torch.no_grad():
            return hf(**ids, position_ids=positions).logits
    finally:
        handle.remove()


@pytest.mark.parametrize("site", ["resid_pre", "resid_post"])
def test_resid_edit_matches_a_pytorch_hook(family, site):
    hf, model = family
    b = sw.bind(model, random_sae(32, 64, layer=1, site=site))
    v = b.direction(5) * 4
    with model.trace(PROMPTS):
        h = b.resid()
        h[:] += v
        logits = model.lm_head.output.save()
    expected = reference_logits(hf, model.tokenizer, 1, site, v)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    with model.trace(PROMPTS):
        clean = model.lm_head.output.save()
    assert (clean - logits).abs().max() > 1e-2  # the edit did something


def test_resid_at_another_layer_and_site(family):
    hf, model = family
    b = sw.bind(model, random_sae(32, 64, layer=1))
    ids = model.tokenizer(PROMPTS, return_tensors="pt", padding=True)
    positions = (ids["attention_mask"].cumsum(-1) - 1).clamp_min(0)
    with torch.no_grad():
        hidden = hf(**ids, position_ids=positions, output_hidden_states=True).hidden_states
    with model.trace(PROMPTS):
        post0 = b.resid(layer=0, site="resid_post").save()
        pre2 = b.resid(layer=2).save()
    torch.testing.assert_close(post0, hidden[1], rtol=0, atol=1e-6)
    torch.testing.assert_close(pre2, hidden[2], rtol=0, atol=1e-6)


def test_resid_edit_with_remote_local(family):
    """The same edit through nnsight's remote serialisation path: with the Binding used in
    the block (it travels as a light residual-stream view) and with envoys taken out first."""
    _, model = family
    b = sw.bind(model, random_sae(32, 64, layer=1))
    v = b.direction(7) * 3
    with model.trace(PROMPTS):
        b.resid()[:] += v
        local = model.lm_head.output.save()
    with model.trace(PROMPTS, remote="local"):
        h = b.resid()
        h[:] += v
        via_binding = model.lm_head.output.save()
    block = b.layout.blocks_of(model)[b.layer]
    with model.trace(PROMPTS, remote="local"):
        block.input[:] += v
        via_envoy = model.lm_head.output.save()
    torch.testing.assert_close(via_binding, local, rtol=0, atol=1e-6)
    torch.testing.assert_close(via_envoy, local, rtol=0, atol=1e-6)


def test_binding_travels_without_sae_weights(gpt2):
    from nnsight.intervention.serialization import dumps

    big = random_sae(32, 8192, layer=1)  # 2 MB of weights
    payload = dumps(sw.bind(gpt2, big))
    assert len(payload) < 100_000


def test_organism_binds():
    model, sae = sw.organism()  # shipped in the package: never skipped
    binding = sw.bind(model, sae)
    assert (binding.layer, binding.site, binding.d_model) == (2, "resid_pre", model._module.config.n_embd)
    with model.trace("The word"):
        h = binding.resid().save()
    assert h.shape[-1] == sae.d_in and torch.isfinite(sae.encode(h)).all()
