"""Readable text for every vocabulary id, whatever the tokenizer's conventions.

GPT-2-style byte-level BPE writes a leading space as ``Ġ`` (and every byte as a
printable stand-in), SentencePiece writes it as ``▁`` and has ``<0xNN>`` byte
tokens; decoding a single SentencePiece token with ``tokenizer.decode`` drops
its leading space. ``vocab_strings`` reads the raw pieces and turns each into
text with a real leading space, and flags byte tokens (incomplete UTF-8) and
special tokens, so that token classes mean the same thing for every model.
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

SPACE_MARKERS = {"byte-level": "Ġ", "sentencepiece": "▁"}
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")
_CACHE: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class VocabStrings:
    """Text of each token id (leading space as ``" "``, undecodable bytes as ``\\xNN``)."""

    strings: tuple[str, ...]
    is_byte: np.ndarray  # incomplete UTF-8: a byte token, not text
    is_special: np.ndarray  # control/special tokens, and ids beyond the tokenizer
    scheme: str  # "byte-level", "sentencepiece" or "plain"

    def __len__(self) -> int:
        return len(self.strings)


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable stand-in character for each byte, inverted."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[chr(byte)] = byte
        else:
            chars[chr(256 + extra)] = byte
            extra += 1
    return chars


def detect_scheme(pieces: Sequence[str]) -> str:
    """Which convention raw vocabulary pieces follow (plain text when no markers)."""
    n_sp = sum(1 for p in pieces if "▁" in p)
    n_bl = sum(1 for p in pieces if p.startswith("Ġ") or p == "Ċ")
    threshold = max(2, len(pieces) // 200)
    if n_sp >= threshold and n_sp >= n_bl:
        return "sentencepiece"
    if n_bl >= threshold:
        decoder = _byte_decoder()
        in_alphabet = sum(1 for p in pieces if p and all(ch in decoder for ch in p))
        if in_alphabet >= 0.95 * sum(1 for p in pieces if p):
            return "byte-level"
    return "plain"


def piece_text(piece: str, scheme: str) -> tuple[str, bool]:
    """``(text, is_byte)`` of one raw piece under ``scheme``."""
    if scheme == "byte-level":
        decoder = _byte_decoder()
        if piece and all(ch in decoder for ch in piece):
            raw = bytes(decoder[ch] for ch in piece)
            try:
                return raw.decode("utf-8"), False
            except UnicodeDecodeError:
                return raw.decode("utf-8", "backslashreplace"), True
        return piece, False
    if scheme == "sentencepiece":
        match = _BYTE_PIECE.fullmatch(piece)
        if match:
            value = int(match.group(1), 16)
            return (chr(value), False) if value < 0x80 else (f"\\x{value:02x}", True)
        return piece.replace("▁", " "), False
    return piece, "\ufffd" in piece


def strings_from_pieces(pieces: Sequence[str], special: Sequence[int] = (), vocab_size: int | None = None) -> VocabStrings:
    """Normalise raw pieces (or already decoded strings) of a vocabulary."""
    n = len(pieces) if vocab_size is None else int(vocab_size)
    pieces = [p if isinstance(p, str) else "" for p in list(pieces)[:n]]
    scheme = detect_scheme(pieces)
    texts, is_byte = [], np.zeros(n, dtype=bool)
    for i, piece in enumerate(pieces):
        text, byte = piece_text(piece, scheme)
        texts.append(text)
        is_byte[i] = byte
    is_special = np.zeros(n, dtype=bool)
    is_special[len(pieces) :] = True
    texts.extend([""] * (n - len(pieces)))
    for i in special:
        if 0 <= i < n:
            is_special[i] = True
            is_byte[i] = False
    return VocabStrings(tuple(texts), is_byte, is_special, scheme)


def tokenizer_strings(tokenizer: Any, vocab_size: int | None = None) -> VocabStrings:
    """``VocabStrings`` of a Hugging Face tokenizer (cached per tokenizer and size)."""
    n_tok = len(tokenizer)
    key = vocab_size or n_tok
    cache = _CACHE.setdefault(tokenizer, {}) if _weakrefable(tokenizer) else {}
    if key not in cache:
        ids = list(range(min(n_tok, key)))
        pieces = tokenizer.convert_ids_to_tokens(ids)
        special = set(getattr(tokenizer, "all_special_ids", []) or [])
        for i, added in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items():
            if getattr(added, "special", False):
                special.add(int(i))
        cache[key] = strings_from_pieces(pieces, sorted(special), key)
    return cache[key]


def _weakrefable(obj: Any) -> bool:
    try:
        weakref.ref(obj)
        return True
    except TypeError:
        return False
