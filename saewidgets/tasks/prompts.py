"""In-context-learning prompts: ``x1 -> y1\\nx2 -> y2\\n...x ->`` built from (x, y) pairs, and where
their separators are once tokenised.

>>> prompts = sw.icl_prompts(pairs, shots=6, n=16, seed=0)     # 16 prompts of 6 shots + a query
>>> prompts[0].text, prompts[0].answer                          # "red -> colour\\n...\\nblue ->", "colour"
>>> zero = sw.icl_prompts(pairs, shots=0, n=32, seed=1)         # zero-shot `x ->` prompts

A separator's position is the token holding the separator's last character (the `` ->`` token of
a byte-level BPE). Prompts given as raw text have no answer: they serve to extract task vectors,
not to score them.
"""

from __future__ import annotations

import numbers
import random
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

SEPARATOR = "->"
LINE_END = "\n"


@dataclass(frozen=True)
class ICLPrompt:
    """One prompt: its text, the answer expected after it (``None`` for raw text), its query and
    shots, and how lines are written (``separator``; ``stop`` ends an answer)."""

    text: str
    answer: str | None = None
    query: str | None = None
    shots: tuple[tuple[str, str], ...] = ()
    separator: str = SEPARATOR
    stop: str = LINE_END

    @property
    def n_shots(self) -> int:
        return len(self.shots)

    def zero_shot(self) -> "ICLPrompt":
        """The same query with no shots: ``x ->``."""
        if self.query is None:
            raise ValueError("a raw-text prompt has no query to ask zero-shot; build prompts with sw.icl_prompts")
        return ICLPrompt(f"{self.query} {self.separator}", self.answer, self.query, (), self.separator, self.stop)


@dataclass(frozen=True)
class Encoded:
    """A prompt as token ids (BOS included when asked) with its separator positions."""

    ids: list[int]
    separators: list[int]  # token indices, in order
    answer_ids: list[int] = field(default_factory=list)  # the answer's tokens (" y"), empty for raw text
    query_start: int = 0  # the first token of the last line (the query's); the shots come before it
    starts_with_bos: bool = False


def check_pairs(pairs: Any, what: str = "pairs") -> list[tuple[str, str]]:
    """``pairs`` as a list of (x, y) string tuples; a ValueError says which entry is wrong."""
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Iterable):
        raise ValueError(f"{what} must be a list of (x, y) string pairs, got {type(pairs).__name__}")
    out = []
    for i, pair in enumerate(pairs):
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise ValueError(f"{what}[{i}] must be an (x, y) pair of strings, got {pair!r}")
        x, y = pair
        if not isinstance(x, str) or not isinstance(y, str) or not x.strip() or not y.strip():
            raise ValueError(f"{what}[{i}] must hold two non-empty strings, got {pair!r}")
        if LINE_END in x or LINE_END in y:
            raise ValueError(f"{what}[{i}] contains a line break; each pair is one line: {pair!r}")
        out.append((x, y))
    if not out:
        raise ValueError(f"{what} is empty: give at least one (x, y) pair")
    return out


def _count(value: Any, name: str, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < lo:
        raise ValueError(f"{name} must be a whole number >= {lo}, got {value!r}")
    return int(value)


def format_prompt(shots: Sequence[tuple[str, str]], query: str, separator: str = SEPARATOR, header: str = "") -> str:
    """``header + "x1 -> y1\\n" ... + "query ->"``; the answer follows as ``" y"``."""
    return header + "".join(f"{x} {separator} {y}{LINE_END}" for x, y in shots) + f"{query} {separator}"


def icl_prompts(pairs: Any, shots: int = 6, n: int = 16, *, seed: int = 0, separator: str = SEPARATOR,
                header: str = "") -> list[ICLPrompt]:
    """``n`` prompts of ``shots`` (x, y) lines and a query ``x ->`` each, drawn with ``seed``.

    Queries are drawn without repetition while the pairs last (then again, in a new order); each
    prompt's shots are other pairs (a different x), drawn without repetition. ``shots=0`` gives
    zero-shot prompts ``x ->``. ``header`` (e.g. ``"Follow the pattern:\\n"``) starts each prompt.
    """
    pairs = check_pairs(pairs)
    shots, n = _count(shots, "shots", 0), _count(n, "n", 1)
    if not isinstance(separator, str) or not separator.strip() or LINE_END in separator:
        raise ValueError(f"separator must be non-empty text on one line, got {separator!r}")
    if not isinstance(header, str):
        raise ValueError(f"header must be text, got {type(header).__name__}")
    distinct_x = len({x for x, _ in pairs})
    if shots > distinct_x - 1:
        raise ValueError(f"shots={shots} needs at least {shots + 1} pairs with different x (the shots and the "
                         f"query), but the task has {distinct_x}: use shots <= {distinct_x - 1}")
    rng = random.Random(seed)
    queries: list[tuple[str, str]] = []
    while len(queries) < n:
        queries += rng.sample(pairs, len(pairs))
    out = []
    for x, y in queries[:n]:
        pool = [p for p in pairs if p[0] != x]
        chosen = tuple(rng.sample(pool, shots))
        out.append(ICLPrompt(format_prompt(chosen, x, separator, header), y, x, chosen, separator))
    return out


def as_prompts(prompts: Any, separator: str = SEPARATOR) -> list[ICLPrompt]:
    """Prompts given as text, ``ICLPrompt`` values or a mix, as a list of ``ICLPrompt``."""
    if isinstance(prompts, (str, ICLPrompt)):
        prompts = [prompts]
    if not isinstance(prompts, Iterable):
        raise ValueError(f"prompts must be a list of strings or sw.icl_prompts(...), got {type(prompts).__name__}")
    out = []
    for i, prompt in enumerate(prompts):
        if isinstance(prompt, ICLPrompt):
            out.append(prompt)
        elif isinstance(prompt, str):
            if not prompt.strip():
                raise ValueError(f"prompt {i} is empty")
            out.append(ICLPrompt(prompt, separator=separator))
        else:
            raise ValueError(f"prompt {i} must be text or an ICLPrompt (sw.icl_prompts), got {type(prompt).__name__}")
    if not out:
        raise ValueError("no prompts: give at least one")
    return out


def with_answers(prompts: Sequence[ICLPrompt], what: str = "prompts") -> list[ICLPrompt]:
    """``prompts``, or a ValueError when one has no answer to score."""
    for i, prompt in enumerate(prompts):
        if prompt.answer is None:
            raise ValueError(f"{what}[{i}] is raw text with no answer to score; build scored prompts with "
                             "sw.icl_prompts(pairs, shots=0, n=...)")
    return list(prompts)


# -- tokens ---------------------------------------------------------------------------------
def separator_ends(text: str, separator: str) -> list[int]:
    """Character offsets just after each occurrence of ``separator`` in ``text``."""
    ends, start = [], 0
    while (at := text.find(separator, start)) >= 0:
        ends.append(at + len(separator))
        start = at + len(separator)
    return ends


def _offsets(tokenizer: Any, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids of ``text`` and each token's character span."""
    try:
        enc = tokenizer(text, return_offsets_mapping=True)
        return list(enc["input_ids"]), [tuple(span) for span in enc["offset_mapping"]]
    except (NotImplementedError, TypeError, ValueError, KeyError):
        pass  # a slow tokenizer: spans from the decoded prefixes
    ids = list(tokenizer(text)["input_ids"])
    spans, done = [], 0
    for i in range(len(ids)):
        length = len(tokenizer.decode(ids[: i + 1], skip_special_tokens=True, clean_up_tokenization_spaces=False))
        spans.append((done, max(done, length)))
        done = max(done, length)
    return ids, spans


def encode(tokenizer: Any, prompt: ICLPrompt, prepend_bos: bool) -> Encoded:
    """Tokenise ``prompt`` (BOS first when asked and the tokenizer did not add it), find its
    separators and its answer's tokens (``" " + answer``, as the model would write it)."""
    ids, spans = _offsets(tokenizer, prompt.text)
    bos = getattr(tokenizer, "bos_token_id", None)
    if prepend_bos and bos is not None and ids[:1] != [bos]:
        ids, spans = [bos, *ids], [(0, 0), *spans]
    separators = []
    for end in separator_ends(prompt.text, prompt.separator):
        holder = next((i for i, (a, b) in enumerate(spans) if a < end <= b), None)
        if holder is not None and holder not in separators:
            separators.append(holder)
    answer_ids: list[int] = []
    if prompt.answer is not None:
        answer_ids = answer_tokens(tokenizer, prompt.answer)
    line = prompt.text.rfind(LINE_END) + 1
    query_start = next((i for i, (a, b) in enumerate(spans) if a >= line and b > a), len(ids)) if line else 0
    return Encoded(ids, separators, answer_ids, query_start, bos is not None and ids[:1] == [bos])


def answer_tokens(tokenizer: Any, answer: str) -> list[int]:
    """The tokens of ``" " + answer`` with no special tokens."""
    ids = list(tokenizer(" " + answer, add_special_tokens=False)["input_ids"])
    if not ids:
        raise ValueError(f"the answer {answer!r} has no tokens")
    return ids


def encode_all(tokenizer: Any, prompts: Sequence[ICLPrompt], prepend_bos: bool, *, need_separator: bool = True
               ) -> list[Encoded]:
    """``encode`` every prompt; a ValueError names a prompt without a separator."""
    out = []
    for i, prompt in enumerate(prompts):
        enc = encode(tokenizer, prompt, prepend_bos)
        if need_separator and not enc.separators:
            raise ValueError(f"prompt {i} has no separator {prompt.separator!r}: {prompt.text[:80]!r}; "
                             f"write it as 'x {prompt.separator} y' lines (or pass separator=...)")
        out.append(enc)
    return out
