"""Behavioural metrics of the organism: LM loss, ICL accuracy, definition completion, steering."""

from __future__ import annotations

import random

import torch
from tokenizers import Tokenizer
from transformers import PreTrainedModel

from .icl import EVAL_TASKS, Task, format_prompt
from tools.references.steering_hooks import steered_generate
from .tokenizer import EOT
from .vocab import CATEGORY_NOUN, HELD_OUT


@torch.no_grad()
def lm_loss(model: PreTrainedModel, windows: torch.Tensor, batch: int = 64) -> float:
    """Mean next-token cross-entropy over `windows`."""
    losses = [model(input_ids=windows[i:i + batch], labels=windows[i:i + batch]).loss.item()
              for i in range(0, len(windows), batch)]
    return sum(losses) / len(losses)


@torch.no_grad()
def greedy(model: PreTrainedModel, tok: Tokenizer, prompt: str, max_new_tokens: int,
           stop: str | None = None) -> str:
    """Greedy continuation of `<|endoftext|>` + prompt, cut at `stop`."""
    ids = torch.tensor([[tok.token_to_id(EOT)] + tok.encode(prompt).ids])
    out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False,
                         pad_token_id=tok.token_to_id(EOT), attention_mask=torch.ones_like(ids))
    text = tok.decode(out[0, ids.shape[1]:].tolist())
    return text.split(stop)[0] if stop else text


def icl_accuracy(model: PreTrainedModel, tok: Tokenizer, task: Task, n_shots: int,
                 n_prompts: int, seed: int) -> float:
    """Fraction of `x ->` queries answered exactly with `n_shots` shots of `task`."""
    rng = random.Random(seed)
    correct = 0
    for _ in range(n_prompts):
        query, answer = rng.choice(task.pairs)
        pool = [p for p in task.pairs if p[0] != query]
        prompt = format_prompt(rng.sample(pool, n_shots), query)
        correct += greedy(model, tok, prompt, 6, stop="\n").strip() == answer
    return correct / n_prompts


def icl_table(model: PreTrainedModel, tok: Tokenizer, tasks: dict[str, Task], shots: tuple[int, ...],
              n_prompts: int, seed: int) -> dict[str, dict[int, float]]:
    """Accuracy per task and number of shots (0 = zero-shot)."""
    return {name: {k: icl_accuracy(model, tok, tasks[name], k, n_prompts, seed) for k in shots}
            for name in (*EVAL_TASKS, "copy")}


def definition_prompt(word: str) -> str:
    """The definition-completion prompt for `word`."""
    return f'The word "{word}" means'


def definition_accuracy(model: PreTrainedModel, tok: Tokenizer,
                        words: dict[str, list[str]] = HELD_OUT) -> tuple[float, dict[str, str]]:
    """Fraction of words completed with their category noun (`... means a colour`), and completions."""
    completions, correct, n = {}, 0, 0
    for concept, ws in words.items():
        noun = CATEGORY_NOUN[concept][1]
        for w in ws:
            text = greedy(model, tok, definition_prompt(w), 2)
            completions[w] = text
            correct += text.split()[-1:] == [noun]
            n += 1
    return correct / n, completions


# Steering: greedy continuations of these prompts, with and without a concept's feature added at
# every position; the score is the share of words that are the concept's words.
STEER_PROMPTS: list[str] = [
    "Yesterday I saw", "She told me about", "Then I thought of", "My friend said",
    "The story was about", "He kept talking about", "In the morning we found", "Guess what I saw:",
    "The last word on the list was", "We talked about", "I remember", "On the table there was",
    "Everyone remembered", "The teacher said", "In my dream there was", "He wrote on the board",
    "Her favourite word is", "Last week", "The puzzle answer was", "After lunch",
    "It was a quiet day.", "Look at this:",
]
STEER_SCALE = 0.5  # x the feature's max activation; at 2x the 4-block model degenerates into repeats


def concept_fraction(texts: list[str], words: list[str]) -> float:
    """Share of whitespace-separated words (punctuation stripped) that are in `words`."""
    tokens = [t.strip('.,!?:;"()') for text in texts for t in text.split()]
    return sum(t in words for t in tokens) / max(1, len(tokens))


def steering_table(model: PreTrainedModel, tokenizer, decoder: torch.Tensor, features: list[dict],
                   concepts: dict[str, list[str]], layer: int) -> dict[str, dict[str, float]]:
    """Per concept: its words' share in greedy continuations of `STEER_PROMPTS` before and after
    adding `STEER_SCALE * max_act` times its feature's decoder row at resid_pre[layer]."""
    out = {}
    for row in features:
        direction, scale = decoder[row["feature"]].detach(), STEER_SCALE * row["max_act"]
        words = concepts[row["concept"]]
        before = steered_generate(model, tokenizer, STEER_PROMPTS, direction, 0.0, layer)
        after = steered_generate(model, tokenizer, STEER_PROMPTS, direction, scale, layer)
        example = max(range(len(after)), key=lambda i: concept_fraction(after[i:i + 1], words))
        out[row["concept"]] = {"scale": scale, "before": concept_fraction(before, words),
                               "after": concept_fraction(after, words),
                               "example_prompt": STEER_PROMPTS[example], "example": after[example]}
    return out
