"""Token classes from GPT-2 byte-level, SentencePiece and plain token strings."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import torch

import saewidgets as sw
from saewidgets.tokens.strings import detect_scheme
from tiny_models import random_sae, tiny_model, tiny_tokenizer

# The same tokens written three ways: GPT-2 pieces, SentencePiece pieces, decoded text.
GPT2 = ["Ġthe", "the", "ĠThe", "ĠNASA", "A", "Ġ(", ")", "Ġ1999", "42", "Ġ.", "Ċ", "ĠĠ", "ĠÃīcole", "Ã©", "âĢ", "Ġred", "Ġgreen", "blue", "{", "ĠQuick"]
SPM = ["▁the", "the", "▁The", "▁NASA", "A", "▁(", ")", "▁1999", "42", "▁.", "<0x0A>", "▁▁", "▁École", "é", "<0xE2>", "▁red", "▁green", "blue", "{", "▁Quick"]
TEXT = [" the", "the", " The", " NASA", "A", " (", ")", " 1999", "42", " .", "\n", "  ", " École", "é", "\ufffd", " red", " green", "blue", "{", " Quick"]


def spm_tokenizer():
    """A real SentencePiece-style tokenizer (Unigram, ▁ marker, byte fallback) built in-process."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    pieces = ["<unk>", "<s>", "</s>", *[f"<0x{b:02X}>" for b in range(256)],
              "▁", "▁the", "▁The", "the", "▁red", "▁green", "▁blu", "e", "▁a", "▁cat", "s", "▁(", ")", "▁1999",
              *list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,()")]
    vocab = [(p, -float(len(p))) for p in pieces]
    tok = Tokenizer(models.Unigram(vocab, unk_id=0, byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Sequence([decoders.Metaspace(replacement="▁", prepend_scheme="always"), decoders.ByteFallback(), decoders.Fuse()])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")


@pytest.mark.parametrize("strings,scheme", [(GPT2, "byte-level"), (SPM, "sentencepiece"), (TEXT, "plain")])
def test_three_spellings_give_the_same_classes(strings, scheme):
    assert detect_scheme(strings) == scheme
    tc = sw.token_classes(strings)
    reference = sw.token_classes(TEXT)
    text_ids = [i for i in range(len(TEXT)) if i != 14]  # 14: a byte token, shown as \xNN or \ufffd
    assert [tc.strings[i] for i in text_ids] == [TEXT[i] for i in text_ids]
    for name in tc.names:
        assert tc[name].tolist() == reference[name].tolist(), name


def test_builtin_classes_on_known_tokens():
    tc = sw.token_classes(TEXT)
    ids = lambda name: [TEXT[i] for i in tc.ids(name)]  # noqa: E731
    assert ids("starts_with_space") == [" the", " The", " NASA", " (", " 1999", " .", "  ", " École", " red", " green", " Quick"]
    assert ids("capitalised") == [" The", " NASA", "A", " École", " Quick"]
    assert ids("all_caps") == [" NASA"]  # a single capital letter is not "all caps"
    assert ids("lower") == [" the", "the", "é", " red", " green", "blue"]
    assert ids("digits") == [" 1999", "42"] and ids("digits_4") == [" 1999"] and ids("digits_2") == ["42"]
    assert ids("punctuation") == [" (", ")", " .", "{"]
    assert ids("open_bracket") == [" (", "{"] and ids("close_bracket") == [")"]
    assert ids("whitespace") == ["\n", "  "]
    assert ids("byte") == ["\ufffd"]
    assert ids("first_letter_e") == [] and ids("first_letter_t") == [" the", "the", " The"]  # a..z only, as the reference
    assert ids("length_3") == [" the", "the", " The", " red"]
    assert not tc["byte"][[i for i, t in enumerate(TEXT) if t != "\ufffd"]].any()


def test_real_byte_level_tokenizer_and_model_vocab():
    tok = tiny_tokenizer()
    tc = sw.token_classes(tok)
    assert tc.vocab.scheme == "byte-level" and tc.vocab_size == len(tok)
    the = tok.convert_tokens_to_ids("Ġthe")
    assert tc.strings[the] == " the" and tc["starts_with_space"][the] and tc["lower"][the]
    assert tc["special"][tok.convert_tokens_to_ids("<|endoftext|>")]
    model = tiny_model("gpt2")
    binding = sw.bind(model, random_sae(32, 64, layer=1))
    assert sw.token_classes(binding).vocab_size == binding.vocab_size == sw.token_classes(model).vocab_size


def test_sentencepiece_tokenizer_keeps_the_leading_space():
    tok = spm_tokenizer()
    the = tok.convert_tokens_to_ids("▁the")
    assert tok.decode([the]).strip() == "the"  # decoding alone would lose the marker's meaning
    tc = sw.token_classes(tok)
    assert tc.vocab.scheme == "sentencepiece"
    assert tc.strings[the] == " the" and tc["starts_with_space"][the]
    newline, e2 = tok.convert_tokens_to_ids("<0x0A>"), tok.convert_tokens_to_ids("<0xE2>")
    assert tc["whitespace"][newline] and tc["byte"][e2] and not tc["punctuation"][e2]
    assert tc["special"][tok.convert_tokens_to_ids("<s>")]
    with pytest.warns(UserWarning, match="not single tokens") as record:
        assert tc.add_words("colours", ["red", "green", "blue"]) is None
    assert [tc.strings[i] for i in np.flatnonzero(tc["colours"])] == [" red", " green"]
    assert tc.split_words["colours"] == {"blue": [" blu", "e"]}
    assert "'blue' -> [' blu', 'e']" in str(record[0].message)
    with pytest.warns(UserWarning, match="only their first token is kept"):
        tc.add_words("colours_first", ["red", "blue"], split="first")
    assert sorted(tc.strings[i] for i in tc.ids("colours_first")) == [" blu", " red"]


def test_padded_unembedding_marks_extra_ids_special():
    import transformers as tf

    tok = tiny_tokenizer()
    torch.manual_seed(0)
    hf = tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=len(tok) + 12, n_embd=32, n_layer=2, n_head=4, n_positions=64)).eval()
    binding = sw.bind(sw.load_model(hf, tokenizer=tok), random_sae(32, 16, layer=1))
    tc = sw.token_classes(binding)
    assert tc.vocab_size == len(tok) + 12
    assert tc["special"][len(tok):].all() and not tc["starts_with_space"][len(tok):].any()


def test_word_lists_with_and_without_space_and_warnings():
    tc = sw.token_classes(TEXT)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tc.add_words("colours", ["red", "green", "blue"]) is None
    assert [TEXT[i] for i in np.flatnonzero(tc["colours"])] == [" red", " green", "blue"]
    with pytest.warns(UserWarning, match="not in the vocabulary: 'purple'"):
        tc.add_words("more", ["red", "purple"])
    assert tc.missing_words["more"] == ["purple"]
    with pytest.raises(ValueError, match="empty"):
        tc.add_words("none", [])
    with pytest.raises(ValueError, match="not one string"):
        tc.add_words("str", "red")
    with pytest.raises(ValueError, match="already exists"):
        tc.add_words("colours", ["red"])
    with pytest.raises(ValueError, match="none of the words"), pytest.warns(UserWarning):
        tc.add_words("absent", ["purple"])
    with pytest.raises(ValueError, match="label group"):
        tc.add_ids("case", [1])


def test_regex_and_id_classes_and_errors():
    tc = sw.token_classes(GPT2)
    assert tc.add_regex("the", r"^ ?[Tt]he$") is None  # nothing to print at the end of a cell
    assert [tc.strings[i] for i in tc.ids("the")] == [" the", "the", " The"]
    assert tc.add_ids("picked", [0, 3]) is None and tc["picked"].tolist()[:4] == [True, False, False, True]
    tc.add_ids("mask", np.arange(len(GPT2)) < 2)
    tc.add_ids("tensor", torch.tensor([5]))
    assert tc["mask"].sum() == 2 and tc["tensor"].sum() == 1
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tc.add_ids("bad", [0, 99])
    with pytest.raises(ValueError, match="integers"):
        tc.add_ids("floats", [0.5])
    with pytest.raises(ValueError, match="invalid regular expression"):
        tc.add_regex("broken", "(")
    with pytest.raises(ValueError, match="unknown token class 'nope'; known classes: starts_with_space"):
        tc["nope"]
    with pytest.raises(KeyError):  # mapping protocol still works
        tc["nope"]
    assert tc.get("nope") is None and "the" in tc
    del tc["picked"]
    assert "picked" not in tc.names
    with pytest.raises(ValueError, match="needs a Binding"):
        sw.token_classes(42)
    with pytest.raises(ValueError, match="empty"):
        sw.token_classes([])


def test_labels_for_histograms():
    tc = sw.token_classes(TEXT)
    space = tc.labels("starts_with_space")
    assert list(space.categories) == ["space", "no space"] and space[0] == "space" and space[1] == "no space"
    case = tc.labels("case")
    assert list(case.categories) == ["capitalised", "lower", "all caps", "other"]
    assert [case[i] for i in (0, 2, 3, 5)] == ["lower", "capitalised", "all caps", "other"]
    assert list(tc.labels("length").categories) == ["1", "2", "3", "4", "5", "6+", "other"]
    assert tc.labels("first_letter")[19] == "q" and tc.labels("first_letter")[12] == "other"
    assert tc.labels("token_type")[14] == "byte" and tc.labels("token_type")[7] == "number"
    digits = tc.labels("digits")
    assert list(digits.categories) == ["digits", "not digits"]
    tc.add_words("colours", ["red", "green"])
    mixed = tc.labels(["colours", "lower"])
    assert [mixed[i] for i in (0, 15, 4)] == ["lower", "colours", "other"]
    with pytest.raises(ValueError, match="unknown token class"):
        tc.labels("nope")
    with pytest.raises(ValueError, match="add_pos"):
        tc.labels("pos")


def test_copies_are_independent():
    tok = tiny_tokenizer()
    a, b = sw.token_classes(tok), sw.token_classes(tok)
    a.add_regex("x", "x")
    assert "x" in a and "x" not in b
    assert a.select(["x", "digits"]).names == ["x", "digits"]


def test_part_of_speech_without_nltk_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "nltk", None)
    tc = sw.token_classes(TEXT)
    with pytest.raises(ValueError, match="pip install nltk"):
        tc.add_pos()


def test_part_of_speech_with_a_given_tagger():
    tc = sw.token_classes(TEXT)
    lexicon = {"the": "DT", "The": "DT", "red": "JJ", "green": "JJ", "blue": "JJ", "NASA": "NNP"}
    added = tc.add_pos(lambda words: [lexicon.get(w, "NN" if w.isalpha() else "SYM") for w in words])
    assert added == ["pos_DT", "pos_JJ", "pos_NN", "pos_NNP", "pos_SYM"]
    assert [TEXT[i] for i in tc.ids("pos_DT")] == [" the", "the", " The"]
    pos = tc.labels("pos")
    assert pos[3] == "NNP" and pos[14] == "other"
