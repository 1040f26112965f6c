"""Training: :func:`train` pretrains an MAE (or the SimCLR baseline, ``method="simclr"``) as a
:class:`TrainConfig` says, single process or under ``torchrun``, on the one run loop of :mod:`.runloop`.
Names load their module on first use (:mod:`maelens._lazy`): the configuration modules import no torch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:
    from .config import TrainConfig
    from .loop import EpochEnd, TrainResult, train
    from .reuse import train_or_load
    from .runconfig import RunConfig
    from .runloop import DivergenceError, RunLoop, Task
    from .schedule import lr_at

_WHERE = {
    "TrainConfig": "config", "EpochEnd": "loop", "TrainResult": "loop", "train": "loop", "train_or_load": "reuse",
    "RunConfig": "runconfig", "DivergenceError": "runloop", "RunLoop": "runloop", "Task": "runloop",
    "lr_at": "schedule",
}
__getattr__ = lazy_names(__name__, _WHERE)
__all__ = [
    "DivergenceError", "EpochEnd", "RunConfig", "RunLoop", "Task", "TrainConfig", "TrainResult", "lr_at", "train",
    "train_or_load",
]
