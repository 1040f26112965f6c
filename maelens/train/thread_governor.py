"""A thread governor for CPU training on a shared machine (issue 23).

With n OpenMP threads on n cores, one competing busy process is enough to make every parallel region wait
for the thread that lost its core: on 2 cores training then runs 4-15x slower, far below the fair half.
With n - 1 threads the training process leaves the competitor a core and keeps about half its speed.
Which is faster depends on the load of the moment, so the governor measures it: every
``recheck_every`` steps it times ``trial_steps`` steps at n threads and as many at n - 1 (the first step
after each switch is not counted: the thread pool restarts), keeps the faster by median step time (n - 1
only when it is faster by more than ``margin``), and says so through ``notify`` when the choice changes.
The cost is a few steps at the slower setting per check: two timed steps per setting by default, because
under load the slower setting is several times slower (on 2 cores beside one busy process, 2.9 s against
0.8 s a step for ``ipol64``) and each of its steps costs as much as three or four of the faster; the gap
it must find is large (a factor 1.8 when idle, 3-4 under load), so two samples tell it apart.
"""

from __future__ import annotations

import statistics
from typing import Callable

import torch

__all__ = ["ThreadGovernor"]


class ThreadGovernor:
    """Chooses between ``threads`` and ``threads - 1`` CPU threads by timing training steps.

    Call :meth:`step_done` with each step's wall time; it changes ``torch``'s thread count (through
    ``set_threads``) as needed. ``enabled=False`` or ``threads`` < 2 make it do nothing. ``warmup``: steps
    before the first check (the first steps of a run allocate and are slow).
    """

    def __init__(self, threads: int, *, enabled: bool = True, trial_steps: int = 2, recheck_every: int = 300,
                 warmup: int = 3, margin: float = 0.05, notify: Callable[[str], None] | None = None,
                 set_threads: Callable[[int], None] = torch.set_num_threads):
        if trial_steps < 1 or recheck_every < 1:
            raise ValueError(f"trial_steps and recheck_every must be at least 1, got {trial_steps}, {recheck_every}")
        self.max_threads = int(threads)
        self.enabled = enabled and self.max_threads > 1
        self.trial_steps = trial_steps
        self.recheck_every = recheck_every
        self.margin = margin
        self.notify = notify
        self.set_threads = set_threads
        self.threads = self.max_threads  # the current choice
        self.countdown = warmup  # steps until the next check
        self.trying: int | None = None  # the thread count being timed, during a check
        self.skip = 0
        self.samples: dict[int, list[float]] = {}
        self.changes: list[tuple[int, int]] = []  # (from, to) of every change, for reports and tests

    def step_done(self, seconds: float) -> None:
        """Account one training step of ``seconds``; may start, advance or finish a check."""
        if not self.enabled:
            return
        if self.trying is None:
            self.countdown -= 1
            if self.countdown <= 0:
                self.samples = {}
                self._try(self.max_threads)
            return
        if self.skip:
            self.skip -= 1
            return
        self.samples.setdefault(self.trying, []).append(seconds)
        if len(self.samples[self.trying]) < self.trial_steps:
            return
        if self.trying == self.max_threads:
            self._try(self.max_threads - 1)
        else:
            self._decide()

    def _try(self, threads: int) -> None:
        self.trying = threads
        self.skip = 1 if threads != self.threads or self.samples else 0
        self._set(threads)

    def _set(self, threads: int) -> None:
        self.set_threads(threads)

    def _decide(self) -> None:
        full = statistics.median(self.samples[self.max_threads])
        fewer = statistics.median(self.samples[self.max_threads - 1])
        best = self.max_threads - 1 if fewer < full * (1 - self.margin) else self.max_threads
        self._set(best)
        if best != self.threads:
            self.changes.append((self.threads, best))
            if self.notify is not None:
                self.notify(f"CPU threads {self.threads} -> {best}: median step {full:.3f} s at {self.max_threads} "
                            f"thread(s), {fewer:.3f} s at {self.max_threads - 1} (re-checked every "
                            f"{self.recheck_every} steps)")
        self.threads = best
        self.trying = None
        self.countdown = self.recheck_every

    def restore(self) -> None:
        """Back to ``threads`` (the count it started from), e.g. when training ends and analyses follow."""
        if self.enabled and self.threads != self.max_threads:
            self._set(self.max_threads)
            self.threads = self.max_threads
        self.trying = None
