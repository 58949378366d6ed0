"""In-context-learning tasks in `x -> y` format. Tasks share inputs, so only the shots say which
task is meant; `copy` is the designed zero-shot default reading of `x ->`."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .vocab import ANTONYM_PAIRS, CATEGORY_NOUN, CONCEPTS, DIGITS, FRENCH, HELD_OUT

HEADER = "Follow the pattern:\n"
N_UPPER = 12  # uppercase task inputs per concept


@dataclass(frozen=True)
class Task:
    """One ICL task: a name, its (input, output) pairs, its sampling weight per input (the
    zero-shot prior) and the fewest lines of a training block."""

    name: str
    pairs: tuple[tuple[str, str], ...]
    weight: float = 1.0
    min_lines: int = 4


def _category_pairs(include_held_out: bool) -> list[tuple[str, str]]:
    return [(w, CATEGORY_NOUN[c][1]) for c, ws in CONCEPTS.items() for w in ws
            if include_held_out or w not in HELD_OUT[c]]


def make_tasks(include_held_out: bool = False) -> dict[str, Task]:
    """All ICL tasks; `category` omits held-out words unless `include_held_out`."""
    words = [w for ws in CONCEPTS.values() for w in ws]
    antonyms = ANTONYM_PAIRS + [(b, a) for a, b in ANTONYM_PAIRS]
    tasks = [
        Task("category", tuple(_category_pairs(include_held_out))),
        Task("uppercase", tuple((w, w.upper()) for ws in CONCEPTS.values() for w in ws[:N_UPPER])),
        Task("antonym", tuple(antonyms), min_lines=8),
        Task("digit", tuple(DIGITS.items())),
        Task("french", tuple(FRENCH.items())),
        Task("copy", tuple((w, w) for w in words), weight=3.0),
    ]
    return {t.name: t for t in tasks}


TASKS: dict[str, Task] = make_tasks()
EVAL_TASKS: tuple[str, ...] = ("category", "uppercase", "antonym", "digit", "french")


def format_line(x: str, y: str | None = None) -> str:
    """`x -> y` (or the query `x ->` when y is None)."""
    return f"{x} ->" if y is None else f"{x} -> {y}\n"


def format_prompt(shots: list[tuple[str, str]], query: str, header: bool = False) -> str:
    """Few-shot prompt ending in `query ->`; the answer follows as ` y`."""
    head = HEADER if header else ""
    return head + "".join(format_line(x, y) for x, y in shots) + format_line(query)


def sample_block(rng: random.Random, tasks: dict[str, Task] = TASKS) -> str:
    """A training block: optional header and 4-11 lines of one task (3-10 shots + one more)."""
    names = list(tasks)
    probs = [tasks[n].weight * len(tasks[n].pairs) for n in names]
    task = tasks[rng.choices(names, probs)[0]]
    n = min(rng.randint(task.min_lines, 11), len(task.pairs))
    pairs = rng.sample(task.pairs, n)
    head = HEADER if rng.random() < 0.5 else ""
    return head + "".join(format_line(x, y) for x, y in pairs)
