"""Prompts for self-explanation: templates with a placeholder, tokenised, placeholder positions found.

A template is the name of a built-in one (``"meaning"``, ``"repeat"``), a string of raw
text, or a list of chat messages (``[{"role": "user", "content": ...}, ...]``; a final
assistant message is continued, not closed). Every occurrence of the placeholder string
(default ``"X"``, matched literally) marks positions whose residual is replaced; a token
that overlaps an occurrence counts, so a placeholder that tokenises into several tokens
has all of its tokens replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

DEFAULT_PLACEHOLDER = "X"
_SENTINEL = "\u0000SAEW_PLACEHOLDER\u0000"


@dataclass(frozen=True)
class BuiltinTemplate:
    """A built-in template: chat messages for chat models, raw text for base models.

    ``stop`` strings cut the generated text into the explanation (the first
    occurrence of any of them ends it).
    """

    chat_user: str
    chat_assistant: str
    base: str
    chat_stop: tuple[str, ...]
    base_stop: tuple[str, ...]


# Chat wording from Kharlapenko & neverix (2024). The base-model wording matches the
# model organism's training sentences (`The word "crimson" means a colour.`,
# `Repeat "crimson" four times: "crimson" "crimson" ...`), which GPT-2 also reads naturally.
TEMPLATES: dict[str, BuiltinTemplate] = {
    "meaning": BuiltinTemplate(
        chat_user='What is the meaning of the word "X"?',
        chat_assistant='The meaning of the word "X" is "',
        base='The word "X" means',
        chat_stop=('"', "\n"),
        base_stop=(".", "\n"),
    ),
    "repeat": BuiltinTemplate(
        chat_user='Repeat "X" four times exactly as it is written.',
        chat_assistant='1. "X"\n2. "X"\n3. "X"\n4. "',
        base='Repeat "X" four times: "X" "X" "',
        chat_stop=('"', "\n"),
        base_stop=('"', "\n"),
    ),
}


@dataclass(frozen=True)
class SelfExplainPrompt:
    """A tokenised prompt: ``input_ids`` (1-D), the placeholder ``positions``, the text."""

    text: str
    input_ids: torch.Tensor
    positions: tuple[int, ...]
    stop: tuple[str, ...]
    chat: bool

    @property
    def length(self) -> int:
        return int(self.input_ids.shape[0])


def is_chat_tokenizer(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def build_prompt(
    tokenizer: Any,
    template: str | Sequence[dict] = "meaning",
    placeholder: str = DEFAULT_PLACEHOLDER,
    stop: Sequence[str] | None = None,
) -> SelfExplainPrompt:
    """Render ``template`` for ``tokenizer`` and locate every placeholder token.

    Built-in names use the tokenizer's chat template when it has one, else the base text.
    A custom string is used as raw text; custom chat messages are rendered with the chat
    template. ``stop`` overrides the strings that end the explanation (default: the
    built-in's, none for custom templates).
    """
    if not isinstance(placeholder, str) or not placeholder:
        raise ValueError(f"placeholder must be a non-empty string, got {placeholder!r}")
    chat = is_chat_tokenizer(tokenizer)
    default_stop: tuple[str, ...] = ()
    if isinstance(template, str) and template in TEMPLATES:
        builtin = TEMPLATES[template]
        if chat:
            messages = [{"role": "user", "content": builtin.chat_user},
                        {"role": "assistant", "content": builtin.chat_assistant}]
            template = [_swap(m, DEFAULT_PLACEHOLDER, placeholder) for m in messages]
            default_stop = builtin.chat_stop
        else:
            template = builtin.base.replace(DEFAULT_PLACEHOLDER, placeholder)
            default_stop = builtin.base_stop
    if isinstance(template, str):
        if placeholder not in template:
            raise ValueError(
                f"the template {template!r} does not contain the placeholder {placeholder!r}; "
                f"write it where the feature should go (e.g. 'The word \"{placeholder}\" means'), "
                f"pass placeholder=..., or use a built-in template: {sorted(TEMPLATES)}"
            )
        marked, is_chat = template.replace(placeholder, _SENTINEL), False
    else:
        marked, is_chat = _render_chat(tokenizer, list(template), placeholder), True
    text, spans = _unmark(marked, placeholder)
    ids, positions = _tokenize(tokenizer, text, spans, add_special_tokens=not is_chat)
    if not positions:
        raise ValueError(f"no token of the prompt {text!r} covers the placeholder {placeholder!r}")
    if positions[-1] == len(ids) - 1:
        raise ValueError(
            f"the placeholder {placeholder!r} is the last token of the prompt {text!r}; the metrics "
            "are read at the last prompt position, so put some text after the placeholder"
        )
    stops = tuple(stop) if stop is not None else default_stop
    return SelfExplainPrompt(text, torch.tensor(ids, dtype=torch.long), tuple(positions), stops, is_chat)


def _swap(message: dict, old: str, new: str) -> dict:
    return {**message, "content": message["content"].replace(old, new)}


def _render_chat(tokenizer: Any, messages: list, placeholder: str) -> str:
    if not messages or not all(isinstance(m, dict) and "role" in m and "content" in m for m in messages):
        raise ValueError(
            "a chat template must be a non-empty list of {'role': ..., 'content': ...} messages"
        )
    if not any(placeholder in str(m["content"]) for m in messages):
        raise ValueError(
            f"no message of the chat template contains the placeholder {placeholder!r}; "
            "write it where the feature should go, or pass placeholder=..."
        )
    if not is_chat_tokenizer(tokenizer):
        raise ValueError(
            "chat messages were given as the template but the tokenizer has no chat_template; "
            "give the prompt as a plain string instead"
        )
    marked = [_swap(m, placeholder, _SENTINEL) for m in messages]
    prefix = ""
    if marked[-1]["role"] == "assistant":  # continue the assistant's answer
        prefix = marked.pop()["content"]
    rendered = tokenizer.apply_chat_template(marked, tokenize=False, add_generation_prompt=True)
    return rendered + prefix


def _unmark(marked: str, placeholder: str) -> tuple[str, list[tuple[int, int]]]:
    """Replace sentinels by the placeholder; return the text and the placeholder char spans."""
    pieces = marked.split(_SENTINEL)
    text, spans = pieces[0], []
    for piece in pieces[1:]:
        spans.append((len(text), len(text) + len(placeholder)))
        text += placeholder + piece
    return text, spans


def _tokenize(tokenizer: Any, text: str, spans: list, add_special_tokens: bool) -> tuple[list[int], list[int]]:
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
        positions = [
            i for i, (a, b) in enumerate(enc["offset_mapping"])
            if b > a and any(a < end and start < b for start, end in spans)
        ]
        return list(enc["input_ids"]), positions
    # Slow tokenizers have no offsets: tokenise the pieces between placeholders separately.
    ids: list[int] = []
    positions = []
    if add_special_tokens:
        ids = list(tokenizer.build_inputs_with_special_tokens([]))
    cursor = 0
    for start, end in spans:
        ids += tokenizer.encode(text[cursor:start], add_special_tokens=False) if start > cursor else []
        piece = tokenizer.encode(text[start:end], add_special_tokens=False)
        positions += range(len(ids), len(ids) + len(piece))
        ids += piece
        cursor = end
    ids += tokenizer.encode(text[cursor:], add_special_tokens=False) if cursor < len(text) else []
    return ids, positions


def cut_explanation(generated: str, stop: Sequence[str]) -> str:
    """The generated text up to the first stop string, without surrounding whitespace."""
    end = len(generated)
    for s in stop:
        # Skip a stop string at the very start (e.g. a leading newline) so the cut is not empty.
        at = generated.find(s, 1 if generated.startswith(s) else 0)
        if at >= 0:
            end = min(end, at)
    return generated[:end].strip()
