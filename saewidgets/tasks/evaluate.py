"""Scoring a task vector: write it at the last separator of zero-shot prompts ``x ->`` and measure
the NLL and the greedy exact-match accuracy of the answers ``y``.

>>> zero = sw.icl_prompts(pairs, shots=0, n=32, seed=1)
>>> sw.evaluate_task_vector(model, tv, zero)                  # replaces resid_pre[tv.layer] at "->"
>>> sw.evaluate_task_vector(model, None, zero).accuracy       # the zero-shot baseline
>>> sw.evaluate_task_vector(model, None, sw.icl_prompts(pairs, shots=6, n=32)).accuracy   # few-shot

Replacing the residual there (Hendel et al.) is the default; ``insert="add"`` adds the vector.
How accuracy is read off one teacher-forced pass is in ``saewidgets.tasks.runs``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..core.direction import Direction
from ..core.model import load_model
from .prompts import as_prompts, encode_all, with_answers
from .runs import Scores, Variant, as_vector, check_batch_size, check_insert, check_layer, d_model, progress_bar, score
from .vector import resolve_bos


def check_answer_tokens(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"answer_tokens must be a whole number >= 1 (the answer tokens the NLL counts) or None "
                         f"(all), got {value!r}")
    return value


@dataclass
class TaskEvaluation:
    """How well prompts are answered, with or without a vector inserted.

    ``nll``: the mean over prompts of the mean NLL (nats) of the first ``answer_tokens`` answer
    tokens; ``accuracy``: the share answered exactly by greedy decoding; ``frame`` one row per
    prompt (prompt, answer, nll, correct, logprobs).
    """

    nll: float
    accuracy: float
    n: int
    layer: int | None
    insert: str | None
    answer_tokens: int | None
    frame: Any = field(repr=False, default=None)

    def to_dict(self) -> dict:
        return {"nll": self.nll, "accuracy": self.accuracy, "n": self.n, "layer": self.layer, "insert": self.insert}


def summary(scores: Scores, v: int, tokens: int | None) -> tuple[float, float]:
    """(mean NLL, accuracy) of variant ``v``."""
    nlls = scores.nll(v, tokens)
    nll = sum(nlls) / len(nlls)
    if not math.isfinite(nll):
        raise ValueError("the NLL came out non-finite: the inserted vector drove the model out of its number range")
    return nll, sum(scores.correct[v]) / len(scores.correct[v])


def prepare(model: Any, prompts: Any, prepend_bos: bool) -> tuple[list, list]:
    items = with_answers(as_prompts(prompts))
    return items, encode_all(model.tokenizer, items, prepend_bos)


def evaluate_task_vector(model: Any, vector: Any, prompts: Any, *, layer: int | None = None, insert: str = "replace",
                         answer_tokens: int | None = None, prepend_bos: bool | None = None, batch_size: int = 64,
                         progress: bool = False, remote: Any = False) -> TaskEvaluation:
    """Score ``prompts`` (``sw.icl_prompts``, with answers) with ``vector`` at their last separator.

    ``vector``: an ``sw.Direction`` or d_model tensor, or ``None`` to score the prompts as they are
    (the zero-shot or few-shot baseline). ``layer``: the block whose input is edited (default: the
    Direction's layer). ``insert``: "replace" (default) or "add". ``answer_tokens``: how many
    answer tokens the NLL counts (default all). ``prepend_bos``: default the vector's setting.
    """
    model = load_model(model)
    insert = check_insert(insert)
    answer_tokens = check_answer_tokens(answer_tokens)
    batch_size = check_batch_size(batch_size)
    variant = Variant()
    if vector is not None:
        if layer is None:
            layer = vector.layer if isinstance(vector, Direction) else None
            if layer is None:
                raise ValueError("which block's input should the vector replace? pass layer=... (a raw tensor "
                                 "has no layer)")
        layer = check_layer(model, layer)
        variant = Variant(layer, as_vector(vector, d_model(model)), insert)
    bos = resolve_bos(prepend_bos, vector=vector)
    items, encoded = prepare(model, prompts, bos)
    bar = progress_bar(len(items), "scoring", progress)
    try:
        scores = score(model, encoded, [variant], items[0].stop, batch_size=batch_size, remote=remote,
                       progress=None if bar is None else bar.update)
    finally:
        if bar is not None:
            bar.close()
    nll, accuracy = summary(scores, 0, answer_tokens)
    return TaskEvaluation(nll, accuracy, len(items), variant.layer, insert if vector is not None else None,
                          answer_tokens, frame=per_prompt(items, scores, 0, answer_tokens))


def per_prompt(items: Sequence[Any], scores: Scores, v: int, tokens: int | None) -> Any:
    import pandas as pd

    return pd.DataFrame({
        "prompt": [item.text for item in items], "answer": [item.answer for item in items],
        "nll": scores.nll(v, tokens), "correct": scores.correct[v], "logprobs": scores.logprobs[v],
    })
