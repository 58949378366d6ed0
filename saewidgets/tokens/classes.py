"""Token classes: named boolean masks over a vocabulary, for enrichment and histograms.

>>> tc = sw.token_classes(model)            # a model, Binding, tokenizer or list of strings
>>> tc["starts_with_space"]                 # numpy bool mask over the vocabulary
>>> tc.add_words("colours", ["red", "green", "blue"])
>>> tc.labels("case")                        # categorical split for a histogram

Classes are computed from each token's text with the leading-space marker
(GPT-2 ``Ġ``, SentencePiece ``▁``) turned into a real space, so they mean the
same for every tokenizer. ``body`` below is the text without its leading spaces.
Byte tokens (incomplete UTF-8) and special tokens belong to no text class.

Built-in classes:
  starts_with_space  text begins with a space
  capitalised        body begins with an upper-case letter (``[A-Z]`` and non-ASCII capitals)
  lower              body begins with a lower-case letter
  all_caps           body is two or more letters, all upper case ("NASA", not "A")
  alphabetic         body is letters only
  digits             body is decimal digits only; digits_1..digits_4: of that many digits
  punctuation        body is punctuation/symbols only (``[^\\w\\s]+``, as the reference)
  open_bracket       body starts with an opening bracket (Unicode Ps: ``( [ {``...)
  close_bracket      body starts with a closing bracket (Unicode Pe: ``) ] }``...)
  whitespace         the text is whitespace only (spaces, newlines, tabs)
  length_1..length_5 body has that many characters
  first_letter_a..z  body is alphabetic and starts with that ASCII letter (either case)
  byte, special      byte tokens; special/control tokens (and unused ids)

Groups for ``labels``: "starts_with_space" (space / no space), "case"
(capitalised / lower / all caps / other), "length" (1..5, 6+, other),
"first_letter" (a..z, other), "token_type" (word / number / punctuation /
whitespace / byte / special / other) and, after ``add_pos()``, "pos".
"""

from __future__ import annotations

import re
import string
import unicodedata
import warnings
import weakref
from collections.abc import Mapping
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from .strings import VocabStrings, strings_from_pieces, tokenizer_strings

LETTERS = string.ascii_lowercase
GROUPS = ("starts_with_space", "case", "length", "first_letter", "token_type", "pos")
_PUNCT = re.compile(r"[^\w\s]+")
_POS_HELP = (
    "part-of-speech classes need NLTK and its tagger data, installed beforehand "
    "(saewidgets never downloads data): pip install 'saewidgets[pos]' (or pip install nltk, 3.9 or newer) && "
    "python -m nltk.downloader averaged_perceptron_tagger_eng — or pass tagger=<callable "
    "mapping a list of words to a list of tags>"
)


class UnknownClassError(KeyError, ValueError):
    """An unknown class name (a ``ValueError``, and a ``KeyError`` for mapping use)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class TokenClasses(Mapping):
    """Named boolean masks over a vocabulary (see the module docstring for the built-ins)."""

    def __init__(self, vocab: VocabStrings, tokenizer: Any = None) -> None:
        self.vocab = vocab
        self.tokenizer = tokenizer
        self._masks: dict[str, np.ndarray] = {}
        self._builtin: set[str] = set()
        self._pos: np.ndarray | None = None
        self._index: dict[str, list[int]] | None = None
        self.split_words: dict[str, dict[str, list[str]]] = {}
        self.missing_words: dict[str, list[str]] = {}
        self._build()

    # -- mapping -----------------------------------------------------------------------
    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._masks:
            raise UnknownClassError(
                f"unknown token class {name!r}; known classes: {', '.join(self._masks)}"
            )
        return self._masks[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._masks)

    def __len__(self) -> int:
        return len(self._masks)

    def __contains__(self, name: object) -> bool:
        return name in self._masks

    def __delitem__(self, name: str) -> None:
        self[name]
        del self._masks[name]
        self._builtin.discard(name)

    def __repr__(self) -> str:
        user = [n for n in self._masks if n not in self._builtin]
        extra = f"; user classes: {', '.join(user)}" if user else ""
        return f"TokenClasses({self.vocab_size} tokens, {self.vocab.scheme}, {len(self)} classes{extra})"

    # -- info --------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Every class name, built-in first, then user classes in the order added."""
        return list(self._masks)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def strings(self) -> tuple[str, ...]:
        """Each token's text (leading space as a real space)."""
        return self.vocab.strings

    def ids(self, name: str) -> np.ndarray:
        """Token ids in class ``name``."""
        return np.flatnonzero(self[name])

    def summary(self, examples: int = 8) -> pd.DataFrame:
        """One row per class: size and a few example tokens."""
        rows = []
        for name, mask in self._masks.items():
            ids = np.flatnonzero(mask)
            rows.append({"class": name, "size": int(ids.size), "examples": [self.strings[i] for i in ids[:examples]]})
        return pd.DataFrame(rows)

    def copy(self) -> "TokenClasses":
        new = TokenClasses.__new__(TokenClasses)
        new.__dict__.update(self.__dict__)
        new._masks = dict(self._masks)
        new._builtin = set(self._builtin)
        new.split_words = {k: dict(v) for k, v in self.split_words.items()}
        new.missing_words = {k: list(v) for k, v in self.missing_words.items()}
        return new

    def select(self, names: Iterable[str]) -> "TokenClasses":
        """A copy holding only ``names`` (e.g. the sets to pass to ``sw.enrichment``)."""
        names = [names] if isinstance(names, str) else list(names)
        for name in names:
            self[name]
        new = self.copy()
        new._masks = {name: self._masks[name] for name in names}
        return new

    # -- user classes --------------------------------------------------------------------
    def add_regex(self, name: str, pattern: str | re.Pattern, *, flags: int = 0) -> np.ndarray:
        """Tokens whose text matches ``pattern`` (``re.search``; a leading space is ``" "``).
        Special tokens are never included."""
        self._check_new(name)
        try:
            regex = re.compile(pattern, flags)
        except (re.error, TypeError) as error:
            raise ValueError(f"invalid regular expression {pattern!r} for class {name!r}: {error}") from error
        mask = np.fromiter((bool(regex.search(s)) for s in self.strings), dtype=bool, count=self.vocab_size)
        return self._store(name, mask & ~self.vocab.is_special)

    def add_ids(self, name: str, ids: Any) -> np.ndarray:
        """Tokens with the given ids (or a boolean mask over the vocabulary)."""
        self._check_new(name)
        if hasattr(ids, "detach"):  # a torch tensor
            ids = ids.detach().cpu().numpy()
        array = np.asarray(sorted(ids) if isinstance(ids, (set, frozenset)) else ids)
        if array.dtype == bool:
            if array.shape != (self.vocab_size,):
                raise ValueError(
                    f"a mask for class {name!r} must have {self.vocab_size} entries, got shape {array.shape}"
                )
            return self._store(name, array.copy())
        array = array.reshape(-1)
        if array.size == 0:
            raise ValueError(f"class {name!r}: the id list is empty")
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"class {name!r}: token ids must be integers, got dtype {array.dtype}")
        bad = array[(array < 0) | (array >= self.vocab_size)]
        if bad.size:
            raise ValueError(
                f"class {name!r}: token ids {bad[:10].tolist()} are outside the vocabulary (0..{self.vocab_size - 1})"
            )
        mask = np.zeros(self.vocab_size, dtype=bool)
        mask[array] = True
        return self._store(name, mask)

    def add_words(self, name: str, words: Iterable[str], *, split: str = "drop") -> np.ndarray:
        """Tokens equal to a word, with or without a leading space (case-sensitive).

        Words that are not a single token in either form are reported: with a
        tokenizer, ``split_words[name]`` maps each to its pieces (``split="first"``
        adds the first piece of ``" " + word``; ``"drop"``, the default, leaves the
        word out); without one, ``missing_words[name]`` lists them. Either way a
        warning names them.
        """
        self._check_new(name)
        if split not in ("drop", "first"):
            raise ValueError(f"split must be 'drop' or 'first', got {split!r}")
        if isinstance(words, str):
            raise ValueError(f"class {name!r}: give a list of words, not one string ({words!r})")
        words = list(dict.fromkeys(w.strip() if isinstance(w, str) else w for w in words))
        if not words:
            raise ValueError(f"class {name!r}: the word list is empty")
        if any(not isinstance(w, str) or not w for w in words):
            raise ValueError(f"class {name!r}: every word must be a non-empty string")
        index = self._text_index()
        mask = np.zeros(self.vocab_size, dtype=bool)
        unmatched = []
        for word in words:
            ids = index.get(word, []) + index.get(" " + word, [])
            if ids:
                mask[ids] = True
            else:
                unmatched.append(word)
        split_map, missing = self._split(unmatched)
        if split == "first":
            for word in split_map:
                first = self._encode(" " + word)[:1]
                mask[first] = True
        if split_map:
            self.split_words[name] = split_map
            shown = "; ".join(f"{w!r} -> {p}" for w, p in list(split_map.items())[:10])
            action = "only their first token is kept" if split == "first" else "they were left out"
            warnings.warn(
                f"class {name!r}: {len(split_map)} of {len(words)} words are not single tokens, "
                f"{action}: {shown} (all in .split_words[{name!r}])",
                stacklevel=2,
            )
        if missing:
            self.missing_words[name] = missing
            warnings.warn(
                f"class {name!r}: {len(missing)} of {len(words)} words are not in the vocabulary: "
                f"{', '.join(map(repr, missing[:20]))} (all in .missing_words[{name!r}])",
                stacklevel=2,
            )
        if not mask.any():
            raise ValueError(f"class {name!r}: none of the words is a token of this vocabulary")
        return self._store(name, mask)

    def add_pos(self, tagger: Callable[[list[str]], list[str]] | None = None) -> list[str]:
        """Part-of-speech classes ``pos_<TAG>`` (and the "pos" group).

        Each token's body is tagged on its own, as in the reference. ``tagger``
        maps a list of words to their tags; by default NLTK's perceptron tagger,
        which must be installed with its data (never downloaded here).
        """
        tagger = tagger or _nltk_tagger()
        text_ids = [i for i, b in enumerate(self._bodies) if b and self._is_text[i]]
        tags = list(tagger([self._bodies[i] for i in text_ids]))
        if len(tags) != len(text_ids):
            raise ValueError(f"the tagger returned {len(tags)} tags for {len(text_ids)} words")
        pos = np.full(self.vocab_size, "", dtype=object)
        pos[text_ids] = [str(t) for t in tags]
        self._pos = pos
        added = []
        for tag in sorted(set(pos[text_ids])):
            name = f"pos_{tag}"
            self._masks.pop(name, None)
            self._store(name, pos == tag)
            added.append(name)
        return added

    # -- categorical splits ------------------------------------------------------------------
    def labels(self, name_or_names: str | Sequence[str]) -> pd.Categorical:
        """A label per token for a categorical split (categories in display order).

        A group name (see the module docstring), a class name (``x`` -> "x" /
        "not x"; "starts_with_space" -> "space" / "no space") or a list of class
        names (first matching class wins, else "other").
        """
        if isinstance(name_or_names, str):
            name = name_or_names
            if name in GROUPS and name != "starts_with_space":
                return self._group(name)
            mask = self[name]
            yes, no = ("space", "no space") if name == "starts_with_space" else (name, f"not {name}")
            return pd.Categorical(np.where(mask, yes, no), categories=[yes, no])
        names = list(name_or_names)
        if not names:
            raise ValueError("labels() needs at least one class name")
        values = np.full(self.vocab_size, "other", dtype=object)
        for name in reversed(names):
            values[self[name]] = name
        return pd.Categorical(values, categories=[*names, "other"])

    # -- internals ---------------------------------------------------------------------------
    def _check_new(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a class name must be a non-empty string, got {name!r}")
        if name in self._masks:
            raise ValueError(f"class {name!r} already exists; choose another name or `del classes[{name!r}]` first")
        if name in GROUPS:
            raise ValueError(f"{name!r} is the name of a label group; choose another class name")

    def _store(self, name: str, mask: np.ndarray) -> np.ndarray:
        mask = np.ascontiguousarray(mask, dtype=bool)
        mask.setflags(write=False)
        self._masks[name] = mask
        return mask

    def _text_index(self) -> dict[str, list[int]]:
        if self._index is None:
            index: dict[str, list[int]] = {}
            for i, text in enumerate(self.strings):
                if self._is_text[i] and text:
                    index.setdefault(text, []).append(i)
            self._index = index
        return self._index

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def _split(self, words: list[str]) -> tuple[dict[str, list[str]], list[str]]:
        if not words:
            return {}, []
        if self.tokenizer is None:
            return {}, words
        unk = getattr(self.tokenizer, "unk_token_id", None)
        split, missing = {}, []
        for word in words:
            ids = self._encode(" " + word)
            if not ids or (unk is not None and unk in ids):
                missing.append(word)
            else:
                split[word] = [self.strings[i] if i < self.vocab_size else str(i) for i in ids]
        return split, missing

    def _build(self) -> None:
        texts = self.strings
        n = len(texts)
        is_text = ~(self.vocab.is_byte | self.vocab.is_special)
        bodies = [t.lstrip(" ") for t in texts]
        self._is_text, self._bodies = is_text, bodies

        def mask(fn: Callable[..., bool]) -> np.ndarray:
            return np.fromiter((bool(is_text[i] and fn(b)) for i, b in enumerate(bodies)), dtype=bool, count=n)

        space = np.fromiter((t.startswith(" ") for t in texts), dtype=bool, count=n) & ~self.vocab.is_special
        upper = mask(lambda b: b[:1].isupper())
        alpha = mask(str.isalpha)
        digits = mask(str.isdecimal)
        built = {
            "starts_with_space": space,
            "capitalised": upper,
            "lower": mask(lambda b: b[:1].islower()),
            "all_caps": mask(lambda b: len(b) >= 2 and b.isalpha() and b.isupper()),
            "alphabetic": alpha,
            "digits": digits,
            **{f"digits_{k}": digits & mask(lambda b, k=k: len(b) == k) for k in range(1, 5)},
            "punctuation": mask(lambda b: bool(_PUNCT.fullmatch(b))),
            "open_bracket": mask(lambda b: unicodedata.category(b[:1] or " ") == "Ps"),
            "close_bracket": mask(lambda b: unicodedata.category(b[:1] or " ") == "Pe"),
            "whitespace": np.fromiter((bool(is_text[i] and t.isspace()) for i, t in enumerate(texts)), dtype=bool, count=n),
            **{f"length_{k}": mask(lambda b, k=k: len(b) == k) for k in range(1, 6)},
            **{f"first_letter_{c}": alpha & mask(lambda b, c=c: b[:1].lower() == c) for c in LETTERS},
            "byte": self.vocab.is_byte.copy(),
            "special": self.vocab.is_special.copy(),
        }
        for name, value in built.items():
            self._store(name, value)
        self._builtin = set(built)

    def _group(self, name: str) -> pd.Categorical:
        n = self.vocab_size
        if name == "case":
            cats = ["capitalised", "lower", "all caps", "other"]
            values = np.full(n, "other", dtype=object)
            values[self["lower"]] = "lower"
            values[self["capitalised"]] = "capitalised"
            values[self["all_caps"]] = "all caps"
        elif name == "length":
            cats = ["1", "2", "3", "4", "5", "6+", "other"]
            lengths = np.fromiter((len(b) for b in self._bodies), dtype=np.int64, count=n)
            values = np.where(lengths >= 6, "6+", lengths.astype(str)).astype(object)
            values[(lengths == 0) | ~self._is_text] = "other"
        elif name == "first_letter":
            cats = [*LETTERS, "other"]
            values = np.full(n, "other", dtype=object)
            for c in LETTERS:
                values[self[f"first_letter_{c}"]] = c
        elif name == "token_type":
            cats = ["word", "number", "punctuation", "whitespace", "byte", "special", "other"]
            values = np.full(n, "other", dtype=object)
            for label, cls in (("word", "alphabetic"), ("number", "digits"), ("punctuation", "punctuation"),
                               ("whitespace", "whitespace"), ("byte", "byte"), ("special", "special")):
                values[self._masks[cls] if cls in self._masks else self._builtin_mask(cls)] = label
        else:  # pos
            if self._pos is None:
                raise ValueError("no part-of-speech tags yet: call classes.add_pos() first (" + _POS_HELP + ")")
            tags = sorted({t for t in self._pos if t})
            cats = [*tags, "other"]
            values = np.where(self._pos == "", "other", self._pos).astype(object)
        return pd.Categorical(values, categories=cats)

    def _builtin_mask(self, name: str) -> np.ndarray:
        fresh = TokenClasses(self.vocab)
        return fresh[name]


def _nltk_tagger() -> Callable[[list[str]], list[str]]:
    try:
        import nltk
    except ImportError as error:
        raise ValueError(_POS_HELP) from error
    for resource in ("taggers/averaged_perceptron_tagger_eng", "taggers/averaged_perceptron_tagger"):
        try:
            nltk.data.find(resource)
            break
        except LookupError:
            continue
    else:
        raise ValueError("NLTK is installed but its tagger data is not found; " + _POS_HELP)
    from nltk.tag import PerceptronTagger

    tagger = PerceptronTagger()
    return lambda words: [tagger.tag([w])[0][1] for w in words]


def token_classes(source: Any, *, vocab_size: int | None = None) -> TokenClasses:
    """Built-in token classes for a Binding, nnsight model, tokenizer or list of token strings.

    With a model or Binding the masks cover the unembedding's columns (ids the
    tokenizer does not know count as special). Strings may be raw pieces
    (``Ġthe``, ``▁the``) or decoded text. Returns a fresh, extendable ``TokenClasses``.
    """
    if isinstance(source, TokenClasses):
        if vocab_size is not None and vocab_size != source.vocab_size:
            raise ValueError(f"these token classes cover {source.vocab_size} tokens, not {vocab_size}")
        return source
    from ..core.binding import Binding

    tokenizer = None
    if isinstance(source, Binding):
        tokenizer, vocab_size = source.tokenizer, vocab_size or source.vocab_size
    elif hasattr(source, "_module") and hasattr(source, "tokenizer"):
        tokenizer, vocab_size = source.tokenizer, vocab_size or _model_vocab(source)
    elif hasattr(source, "convert_ids_to_tokens"):
        tokenizer = source
    elif isinstance(source, Sequence) and not isinstance(source, (str, bytes)):
        if not all(isinstance(s, str) for s in source):
            raise ValueError("a list of token strings must contain only strings")
        if not source:
            raise ValueError("the list of token strings is empty")
        return TokenClasses(strings_from_pieces(list(source), (), vocab_size))
    else:
        raise ValueError(
            f"token_classes needs a Binding, an nnsight model, a tokenizer or a list of token strings; "
            f"got {type(source).__name__}"
        )
    if tokenizer is None:
        raise ValueError("this model has no tokenizer; pass one: sw.token_classes(tokenizer)")
    try:
        per_tokenizer = _BASE_CACHE.setdefault(tokenizer, {})
    except TypeError:  # not weak-referenceable
        per_tokenizer = {}
    base = per_tokenizer.get(vocab_size)
    if base is None:
        base = per_tokenizer[vocab_size] = TokenClasses(tokenizer_strings(tokenizer, vocab_size), tokenizer)
    return base.copy()


_BASE_CACHE: "weakref.WeakKeyDictionary[Any, dict[int | None, TokenClasses]]" = weakref.WeakKeyDictionary()


def _model_vocab(model: Any) -> int:
    from ..core.model import model_layout

    head = model_layout(model).part(model._module, "unembed")
    weight = getattr(head, "weight", None)
    if weight is None:
        return len(model.tokenizer)
    return int(weight.shape[0])
