"""Shared timing loop of the benchmarks: runs timed alternately, wall and process CPU time."""

from __future__ import annotations

import time
from typing import Callable


def interleaved(runs: dict[str, Callable[[], object]], repeats: int,
                warmup: bool = True) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Run each callable once untimed (``warmup``), then ``repeats`` rounds of all of them in turn;
    returns the wall and the CPU seconds of every timed run, by name. Alternating spreads the load of
    other jobs over all runs, so ratios of the fastest (or median) times are fair."""
    if warmup:
        for run in runs.values():
            run()
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return wall, cpu
