"""Timing shared by the benchmarks: interleaved variants, median wall and process-CPU seconds."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def sync(device: str) -> None:
    """Wait for queued GPU work, so that a timer stops when the work is done."""
    if device == "cuda":
        torch.cuda.synchronize()


def measure(variants: dict[str, Callable[[], object]], repeats: int, device: str) -> dict[str, dict[str, float]]:
    """Median wall and process-CPU seconds per call of each variant.

    The variants are interleaved within each repeat, after one warm-up round.
    """
    wall: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for round_ in range(repeats + 1):
        for name, fn in variants.items():
            sync(device)
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            sync(device)
            if round_:
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
    return {name: dict(wall=statistics.median(wall[name]), cpu=statistics.median(cpu[name])) for name in variants}
