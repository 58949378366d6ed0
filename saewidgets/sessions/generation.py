"""The explorer's generation as JSON (the ``generation`` trait), and a small thread-safe cache.

``GenerationView`` accumulates streamed tokens of one request (``sessions.explorer.SteerRequest``)
and renders the JSON the front end shows.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class Side:
    """One continuation (baseline or steered) as tokens and log-probabilities."""

    tokens: list[str] = field(default_factory=list)
    logprobs: list[float | None] = field(default_factory=list)
    ended: bool = False  # the last token is an end-of-sequence token

    def add(self, token: str, logprob: float | None) -> None:
        self.tokens.append(token)
        self.logprobs.append(None if logprob is None or not math.isfinite(logprob) else round(float(logprob), 4))

    def to_json(self) -> dict[str, Any]:
        return {"tokens": list(self.tokens), "logprobs": list(self.logprobs), "ended": self.ended}


@dataclass
class GenerationView:
    """The ``generation`` trait of one request, built up step by step."""

    request_id: int
    request: Any  # sessions.explorer.SteerRequest
    status: str = "running"
    baseline: Side = field(default_factory=Side)
    steered: Side = field(default_factory=Side)
    baseline_done: bool = False
    seconds: float | None = None

    def add_step(self, baseline: tuple[str, float] | None, steered: tuple[str, float] | None) -> None:
        if baseline is not None and not self.baseline_done:
            self.baseline.add(*baseline)
        if steered is not None:
            self.steered.add(*steered)

    def to_json(self) -> dict[str, Any]:
        r = self.request
        out = {
            "id": self.request_id,
            "status": self.status,
            "prompt": r.prompt,
            "features": [[f, s] for f, s in r.features],
            "direction": None if r.direction is None else {"name": r.direction.name, "scale": r.scale},
            "max_new_tokens": r.decoding.max_new_tokens,
            "temperature": r.decoding.temperature,
            "seed": r.decoding.seed,
            "baseline": self.baseline.to_json(),
            "steered": self.steered.to_json(),
        }
        if self.seconds is not None:
            out["seconds"] = round(self.seconds, 4)
        return out


def side_from_ids(ids: list[int], logprobs: list[float], decode: Callable[[int], str], ended: bool = False) -> Side:
    side = Side(ended=ended)
    for token, logprob in zip(ids, logprobs):
        side.add(decode(token), logprob)
    return side


class LRUCache:
    """A small thread-safe least-recently-used cache (the worker and the kernel both use it)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def drop(self, key: Any) -> None:
        with self._lock:
            self._items.pop(key, None)

    def values(self) -> list[Any]:
        with self._lock:
            return list(self._items.values())
