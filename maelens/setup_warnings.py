"""Set-ups that run but are known to be slow or useless, said once as a warning (issue 27): a training run
whose epochs hold at most one optimizer step per process, a learning rate of 0 for every step, SimCLR's
CIFAR stem on inputs above 32 px. Torch-free: the checks read a run's configuration values and the
records of its ``log.jsonl``; the caller prints (the CLI as ``maelens train: warning: ...``)."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

__all__ = ["CIFAR_STEM_MAX_SIZE", "WarnOnce", "config_warnings", "log_warnings"]

#: Largest input side for which SimCLR's CIFAR stem (3x3 stride-1 convolution, no max-pool) was designed.
CIFAR_STEM_MAX_SIZE = 32


def config_warnings(*, method: str, image_size: int, stem: str | None = None, peak_lr: float | None = None
                    ) -> list[str]:
    """Warnings a run's configuration gives before any step: ``peak_lr`` 0 (the weights never move) and
    the CIFAR stem above :data:`CIFAR_STEM_MAX_SIZE` px (without the ImageNet stem's stride-2 convolution
    and max-pool the first stage works on 16 times the positions: many times slower, for inputs it was
    not designed for)."""
    out = []
    if peak_lr is not None and peak_lr <= 0:
        out.append(f"the peak learning rate is {peak_lr:g}: no optimizer step will change the weights")
    if method == "simclr" and stem == "cifar" and image_size > CIFAR_STEM_MAX_SIZE:
        out.append(f"stem=cifar at {image_size} px: the CIFAR stem (3x3 stride-1 convolution, no max-pool) keeps "
                   f"16x the positions of the default imagenet stem in the first stage, so every step is many times "
                   f"slower; it was designed for inputs of {CIFAR_STEM_MAX_SIZE} px or less")
    return out


def log_warnings(records: Sequence[dict[str, Any]], *, world_size: int = 1, finished: bool = False) -> list[str]:
    """Warnings from a training log's records (``kind`` step / epoch, ``epoch``, ``lr``): an epoch of at most
    one optimizer step per process (the warm-up and decay then have no room: the run is a few steps long,
    often at lr 0), and, once the run is ``finished``, every step at learning rate 0."""
    out = []
    steps = [r for r in records if r.get("kind") == "step"]
    first = [r for r in steps if r.get("epoch") == (steps[0].get("epoch") if steps else None)]
    epoch_ended = any(r.get("kind") == "epoch" for r in records)
    if epoch_ended and len(first) <= 1:
        out.append(f"an epoch is {len(first)} optimizer step per process ({world_size} process(es)): the data set "
                   f"holds too few images for batch_size x processes x accum_iter, so the warm-up and the schedule "
                   f"have no room; use more images, a smaller batch_size or fewer processes")
    lrs = [r.get("lr") for r in steps if r.get("lr") is not None]
    if finished and lrs and all(lr == 0 for lr in lrs):
        out.append(f"all {len(lrs)} optimizer step(s) ran at learning rate 0 (the warm-up starts from 0): the "
                   f"weights did not change")
    return out


class WarnOnce:
    """Calls ``say(message)`` for each message the first time it is given, never again."""

    def __init__(self, say) -> None:
        self.say = say
        self.said: set[str] = set()

    def __call__(self, messages: Iterable[str]) -> None:
        for message in messages:
            if message not in self.said:
                self.said.add(message)
                self.say(message)
