"""An overall ETA for commands that run several stages (``compare``; ``report`` of many folders): after each
stage, the stages done, the one starting and the time left at the mean pace so far, one line on stderr."""

from __future__ import annotations

import sys
import time

__all__ = ["EpochClock", "StageClock", "duration"]


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s`` or ``1 h 02 min``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


class StageClock:
    """Call with ``(description, done, total)`` before each stage; prints ``maelens CMD: stage 3/8 (what),
    about 1 min 20 s left`` (no estimate before the first stage ends). Silent when ``quiet``."""

    def __init__(self, command: str, quiet: bool = False, stream=None) -> None:
        self.command, self.quiet = command, quiet
        self.stream = stream if stream is not None else sys.stderr
        self.start = time.perf_counter()

    def __call__(self, description: str, done: int, total: int) -> None:
        if self.quiet:
            return
        elapsed = time.perf_counter() - self.start
        left = f", about {duration(elapsed / done * (total - done))} left" if done else ""
        print(f"maelens {self.command}: stage {done + 1}/{total} ({description}){left}", file=self.stream)

    def finished(self, done: int, total: int, unit: str = "epochs") -> None:
        """After a stage: ``maelens CMD: 3/30 epochs done, about 4 min 10 s left`` at the pace so far."""
        if self.quiet or done <= 0:
            return
        elapsed = time.perf_counter() - self.start
        left = f", about {duration(elapsed / done * (total - done))} left" if total > done else ""
        print(f"maelens {self.command}: {done}/{total} {unit} done{left}", file=self.stream)


class EpochClock(StageClock):
    """The trainers' epoch callbacks call it with each finished epoch (counted from 0) of a run of ``epochs``;
    a resumed run counts the epochs it runs itself."""

    def __init__(self, command: str, epochs: int, quiet: bool = False, stream=None) -> None:
        super().__init__(command, quiet, stream)
        self.epochs = epochs
        self.first: int | None = None

    def epoch_done(self, epoch: int) -> None:
        self.first = epoch if self.first is None else self.first
        self.finished(epoch + 1 - self.first, self.epochs - self.first)
