"""Tiny random transformers models with a real BPE tokenizer, built in-process (no hub)."""

from __future__ import annotations

from functools import lru_cache

import torch

TEXT = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello World! The year 1999 had 365 days, and 2024 had 366.",
    "Red, green and BLUE are colours; cats and dogs are animals (mostly).",
    "She said: \"Repeat after me\" - one, two, three.",
]


@lru_cache(maxsize=None)
def tiny_tokenizer(vocab_size: int = 400):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(TEXT * 20, vocab_size=vocab_size, min_frequency=1, special_tokens=["<|endoftext|>"])
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )


def tiny_hf_model(family: str = "gpt2", d_model: int = 32, n_layers: int = 3, seed: int = 0):
    """A random causal LM of ``family`` (gpt2, llama, neox, gemma2, qwen2, phi3)."""
    import transformers as tf

    tok = tiny_tokenizer()
    vocab = len(tok)
    common = dict(vocab_size=vocab, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    llama_like = dict(
        hidden_size=d_model, intermediate_size=2 * d_model, num_hidden_layers=n_layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, **common,
    )
    configs = {
        "gpt2": lambda: tf.GPT2Config(n_embd=d_model, n_layer=n_layers, n_head=4, n_positions=128, **common),
        "llama": lambda: tf.LlamaConfig(**llama_like),
        "qwen2": lambda: tf.Qwen2Config(**llama_like),
        "gemma2": lambda: tf.Gemma2Config(head_dim=8, **llama_like),
        "phi3": lambda: tf.Phi3Config(**{**llama_like, "num_key_value_heads": 4}),
        "neox": lambda: tf.GPTNeoXConfig(
            hidden_size=d_model, intermediate_size=2 * d_model, num_hidden_layers=n_layers,
            num_attention_heads=4, max_position_embeddings=128, **common,
        ),
    }
    torch.manual_seed(seed)
    model = tf.AutoModelForCausalLM.from_config(configs[family]()).eval()
    return model, tok


def tiny_model(family: str = "gpt2", **kw):
    """The nnsight-wrapped tiny model."""
    import saewidgets as sw

    hf, tok = tiny_hf_model(family, **kw)
    return sw.load_model(hf, tokenizer=tok)


def random_sae(d_in: int, d_sae: int = 64, layer: int = 1, site: str = "resid_pre", seed: int = 0, **kw):
    import saewidgets as sw

    g = torch.Generator().manual_seed(seed)
    W_dec = torch.randn(d_sae, d_in, generator=g)
    W_dec = W_dec / W_dec.norm(dim=1, keepdim=True)
    return sw.SAE(
        W_dec.T.clone(), W_dec, torch.randn(d_sae, generator=g) * 0.1, torch.randn(d_in, generator=g) * 0.1,
        hook=sw.HookPoint(layer, site, f"blocks.{layer}.hook_{site}"), **kw,
    )
