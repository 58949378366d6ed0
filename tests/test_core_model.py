"""sw.load_model and model layouts, on tiny random models of every supported family (no hub)."""

from __future__ import annotations

import math

import pytest
import torch

import saewidgets as sw
from saewidgets.core.binding import resid
from saewidgets.core.model import model_layout
from tiny_models import tiny_hf_model, tiny_tokenizer

# family -> (config.model_type, blocks, embed, final_norm, unembed) as transformers 5 names them
FAMILIES = {
    "gpt2": ("gpt2", "transformer.h", "transformer.wte", "transformer.ln_f", "lm_head"),
    "neox": ("gpt_neox", "gpt_neox.layers", "gpt_neox.embed_in", "gpt_neox.final_layer_norm", "lm_head"),
    "llama": ("llama", "model.layers", "model.embed_tokens", "model.norm", "lm_head"),
    "qwen2": ("qwen2", "model.layers", "model.embed_tokens", "model.norm", "lm_head"),
    "gemma2": ("gemma2", "model.layers", "model.embed_tokens", "model.norm", "lm_head"),
    "phi3": ("phi3", "model.layers", "model.embed_tokens", "model.norm", "lm_head"),
}
PROMPTS = ["The quick brown fox jumps over", "Hello"]  # two lengths: a left-padded batch
BLOOM_LAYOUT = dict(
    blocks="transformer.h", embed="transformer.word_embeddings", final_norm="transformer.ln_f", unembed="lm_head"
)


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request):
    hf, tok = tiny_hf_model(request.param)
    return request.param, hf, sw.load_model(hf, tokenizer=tok)


def reference_hidden_states(hf, tokenizer, prompts):
    """Plain transformers forward with the positions a left-padded batch should get."""
    ids = tokenizer(prompts, return_tensors="pt", padding=True)
    positions = (ids["attention_mask"].cumsum(-1) - 1).clamp_min(0)
    with torch.no_grad():
        out = hf(**ids, position_ids=positions, output_hidden_states=True)
    return ids, out


def trace_residuals(model, ids):
    layout = model_layout(model)
    n = len(layout.blocks_of(model._module))
    pre, post = [], []
    with model.trace(dict(ids)):
        embed = layout.part(model, "embed").output.save()
        for layer in range(n):
            pre.append(resid(model, layout, layer, "resid_pre").save())
            post.append(resid(model, layout, layer, "resid_post").save())
        logits = model.lm_head.output.save()
    return embed, pre, post, logits


def tiny_bloom():
    from transformers import BloomConfig, BloomForCausalLM

    tok = tiny_tokenizer()
    torch.manual_seed(0)
    config = BloomConfig(vocab_size=len(tok), hidden_size=32, n_layer=2, n_head=4, bos_token_id=0, eos_token_id=0)
    return BloomForCausalLM(config).eval(), tok


# -- layouts ----------------------------------------------------------------------------------


def test_layout_is_detected_for_each_family(family):
    name, hf, model = family
    model_type, blocks, embed, final_norm, unembed = FAMILIES[name]
    layout = model_layout(model)
    assert (layout.family, layout.blocks, layout.embed, layout.final_norm, layout.unembed) == (
        model_type, blocks, embed, final_norm, unembed,
    )
    assert layout.blocks_of(hf) is layout.part(hf, "blocks")
    assert isinstance(layout.blocks_of(hf), torch.nn.ModuleList) and len(layout.blocks_of(hf)) == 3
    assert isinstance(layout.part(hf, "embed"), torch.nn.Embedding)
    assert layout.part(hf, "unembed") is hf.get_output_embeddings()
    assert len(layout.blocks_of(model)) == 3  # Envoys on the nnsight model


def test_residual_stream_equals_hidden_states(family):
    """resid_pre[L] is hidden_states[L], resid_post[L] is hidden_states[L+1], except after the
    last block where transformers applies the final norm."""
    name, hf, model = family
    ids, ref = reference_hidden_states(hf, model.tokenizer, PROMPTS)
    assert ids["attention_mask"][1, 0] == 0  # the short prompt is left-padded
    embed, pre, post, logits = trace_residuals(model, ids)
    hs = ref.hidden_states
    for layer in range(3):
        torch.testing.assert_close(pre[layer], hs[layer], rtol=0, atol=1e-6)
        if layer < 2:
            torch.testing.assert_close(post[layer], hs[layer + 1], rtol=0, atol=1e-6)
    final_norm = model_layout(model).part(hf, "final_norm")
    with torch.no_grad():
        torch.testing.assert_close(final_norm(post[-1]), hs[-1], rtol=0, atol=1e-5)
    torch.testing.assert_close(logits, ref.logits, rtol=1e-4, atol=1e-4)
    W_E = model_layout(model).part(hf, "embed").weight
    looked_up = W_E[ids["input_ids"]]
    if name == "gemma2":  # Gemma scales the embeddings by sqrt(d): resid_pre[0] is not a row of W_E
        torch.testing.assert_close(pre[0], looked_up * math.sqrt(32), rtol=1e-6, atol=1e-6)
        assert not torch.allclose(pre[0], looked_up)
    elif name != "gpt2":  # (GPT-2 adds position embeddings)
        torch.testing.assert_close(pre[0], looked_up, rtol=0, atol=0)
    if name != "gpt2":
        torch.testing.assert_close(embed, pre[0], rtol=0, atol=0)


def test_unembedding_and_sizes(family):
    _, hf, model = family
    binding = sw.bind(model, sw.SAE(torch.zeros(32, 8), torch.zeros(8, 32), hook=sw.HookPoint(1)))
    W_U = binding.unembedding()
    head = hf.get_output_embeddings().weight
    assert torch.equal(W_U, head.T) and W_U.data_ptr() == head.data_ptr()  # a view, not a copy
    assert (binding.d_model, binding.n_layers, binding.vocab_size) == (32, 3, head.shape[0])
    assert binding.final_norm() is model_layout(model).part(hf, "final_norm")


def test_unknown_layout_error_says_what_was_looked_for_and_how_to_fix():
    hf, tok = tiny_bloom()
    with pytest.raises(ValueError) as error:
        sw.load_model(hf, tokenizer=tok)
    message = str(error.value)
    for expected in ("BloomForCausalLM", "transformer.h", "transformer.wte", "model.layers", "gpt_neox.layers",
                     "['transformer', 'lm_head']", "layout=dict(blocks="):
        assert expected in message


def test_explicit_layout_for_an_unknown_family():
    hf, tok = tiny_bloom()
    model = sw.load_model(hf, tokenizer=tok, layout=BLOOM_LAYOUT)
    layout = model_layout(model)
    assert layout.family == "custom" and layout.embed == "transformer.word_embeddings"
    ids, ref = reference_hidden_states(hf, tok, PROMPTS)
    _, pre, post, _ = trace_residuals(model, ids)
    torch.testing.assert_close(pre[1], ref.hidden_states[1], rtol=0, atol=1e-6)
    torch.testing.assert_close(post[0], ref.hidden_states[1], rtol=0, atol=1e-6)
    # Binding re-reads the model through load_model: the explicit layout must survive that.
    binding = sw.bind(model, sw.SAE(torch.zeros(32, 8), torch.zeros(8, 32), hook=sw.HookPoint(1)))
    assert binding.layout is layout and binding.n_layers == 2
    assert sw.load_model(model) is model and model_layout(model) is layout


def test_partial_override_and_layout_object():
    hf, tok = tiny_hf_model("llama")
    model = sw.load_model(hf, tokenizer=tok, layout=dict(final_norm="model.layers.2.post_attention_layernorm"))
    layout = model_layout(model)
    assert layout.family == "custom" and layout.blocks == "model.layers"
    assert layout.final_norm == "model.layers.2.post_attention_layernorm"
    explicit = sw.ModelLayout("model.layers", "model.embed_tokens", "model.norm", "lm_head", family="mine")
    assert model_layout(sw.load_model(model, layout=explicit)) is explicit  # replaces it on an nnsight model


@pytest.mark.parametrize(
    "layout, message",
    [
        (dict(blokcs="model.layers"), "unknown layout keys ['blokcs']"),
        (dict(blocks="model.layerz"), "layout blocks='model.layerz' does not exist on LlamaForCausalLM"),
        (dict(blocks="model.norm"), "not a list of transformer blocks"),
        (dict(unembed=3), "layout unembed=3 does not exist"),
        ("model.layers", "layout must be a dict of module paths"),
    ],
)
def test_bad_layout_overrides(layout, message):
    hf, tok = tiny_hf_model("llama")
    with pytest.raises((ValueError, TypeError), match=message.replace("[", r"\[").replace("]", r"\]")):
        sw.load_model(hf, tokenizer=tok, layout=layout)


# -- loading ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_llama(tmp_path_factory):
    hf, tok = tiny_hf_model("llama", seed=3)
    directory = tmp_path_factory.mktemp("llama")
    hf.save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory, hf


def test_load_local_directory_offline(saved_llama, no_network):
    """A save_pretrained directory loads by path with no network (HF_HUB_OFFLINE unset)."""
    directory, hf = saved_llama
    for spec in (directory, str(directory)):
        model = sw.load_model(spec)
        assert not next(model._module.parameters()).is_meta  # dispatched
        assert model.tokenizer.padding_side == "left" and model.tokenizer.pad_token is not None
        assert model_layout(model).family == "llama"
        with model.trace("The quick brown fox"):
            logits = model.lm_head.output.save()
        ids = model.tokenizer("The quick brown fox", return_tensors="pt")
        with torch.no_grad():
            torch.testing.assert_close(logits, hf(**ids).logits, rtol=0, atol=1e-5)


def test_loading_options_pass_through(saved_llama, no_network):
    directory, hf = saved_llama
    model = sw.load_model(directory, dtype=torch.float64, device_map="cpu")
    assert next(model._module.parameters()).dtype == torch.float64
    assert next(model._module.parameters()).device == torch.device("cpu")
    lazy = sw.load_model(directory, dispatch=False)
    assert next(lazy._module.parameters()).is_meta
    with lazy.trace("Hello"):
        logits = lazy.lm_head.output.save()
    assert logits.shape[-1] == hf.config.vocab_size and not next(lazy._module.parameters()).is_meta


def test_spreading_device_map_without_accelerate(saved_llama):
    import importlib.util

    if importlib.util.find_spec("accelerate") is not None:
        pytest.skip("accelerate is installed: device_map='auto' works")
    directory, _ = saved_llama
    with pytest.raises(ValueError, match="device_map='auto' spreads the model with the accelerate package.*pip install accelerate"):
        sw.load_model(directory, device_map="auto")


def test_transformers_model_finds_its_tokenizer_or_asks_for_one(saved_llama):
    from transformers import AutoModelForCausalLM

    directory, _ = saved_llama
    model = sw.load_model(AutoModelForCausalLM.from_pretrained(directory))
    assert len(model.tokenizer) == len(tiny_tokenizer())
    hf, _ = tiny_hf_model("gpt2")
    with pytest.raises(ValueError, match="no tokenizer for this GPT2LMHeadModel: pass tokenizer="):
        sw.load_model(hf)


def test_directory_without_config(tmp_path):
    (tmp_path / "weights.safetensors").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        sw.load_model(tmp_path)


def test_directory_without_tokenizer(tmp_path):
    hf, tok = tiny_hf_model("gpt2")
    hf.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="has no tokenizer files.*tokenizer.save_pretrained"):
        sw.load_model(tmp_path)
    assert model_layout(sw.load_model(tmp_path, tok)).family == "gpt2"


def test_missing_paths(tmp_path):
    for spec in (tmp_path / "nope", str(tmp_path / "nope"), "./no/such/model", "~/no-such-model-dir"):
        with pytest.raises(FileNotFoundError, match="no model directory at"):
            sw.load_model(spec)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="is a file; give the model's directory"):
        sw.load_model(tmp_path / "config.json")


def test_hub_id_while_offline_fails_fast_and_clearly(monkeypatch, tmp_path, no_network):
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ValueError, match="could not load model 'saewidgets-tests/no-such-model'.*HF_HUB_OFFLINE"):
        sw.load_model("saewidgets-tests/no-such-model")


def test_nnsight_model_passes_through():
    hf, tok = tiny_hf_model("gpt2")
    model = sw.load_model(hf, tokenizer=tok)
    assert sw.load_model(model) is model
    with pytest.raises(ValueError, match="already an nnsight model"):
        sw.load_model(model, dtype=torch.float16)
    with pytest.raises(ValueError, match="has no tokenizer"):
        sw.load_model(model.transformer)


def test_load_model_rejects_other_inputs():
    with pytest.raises(TypeError, match="load_model got a int"):
        sw.load_model(3)
