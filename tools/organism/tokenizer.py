"""Byte-level BPE tokenizer (GPT-2 style, `Ġ` marks a leading space) trained on the corpus."""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from .vocab import all_words

EOT = "<|endoftext|>"


def train_bpe(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """Train a GPT-2-style byte-level BPE on `texts`."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[EOT], min_frequency=2, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def word_forms(word: str) -> tuple[str, str]:
    """The two surface forms of a concept word: with and without a leading space."""
    return " " + word, word


def multi_token_words(tok: Tokenizer) -> list[str]:
    """Concept-word forms that are not a single token."""
    return [f for w in all_words() for f in word_forms(w) if len(tok.encode(f).ids) != 1]


def train_tokenizer(texts: list[str], vocab_size: int = 2048, max_vocab: int = 8192) -> Tokenizer:
    """Train, growing the vocabulary until every concept-word form is a single token."""
    while True:
        tok = train_bpe(texts, vocab_size)
        bad = multi_token_words(tok)
        if not bad or vocab_size >= max_vocab:
            if bad:
                raise RuntimeError(f"multi-token concept words at vocab {vocab_size}: {bad[:10]}")
            return tok
        vocab_size += 512


def to_transformers(tok: Tokenizer) -> PreTrainedTokenizerFast:
    """Wrap as a transformers fast tokenizer with `<|endoftext|>` as bos, eos, pad and unk."""
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=EOT, eos_token=EOT, pad_token=EOT, unk_token=EOT,
        model_max_length=128, clean_up_tokenization_spaces=False,
    )
