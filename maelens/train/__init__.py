"""MAE pretraining (and the SimCLR baseline, ``method="simclr"``): :func:`train` runs a :class:`TrainConfig`
(single process or under ``torchrun``)."""

from .config import TrainConfig
from .loop import DivergenceError, EpochEnd, TrainResult, train
from .reuse import train_or_load
from .schedule import lr_at

__all__ = ["DivergenceError", "EpochEnd", "TrainConfig", "TrainResult", "lr_at", "train", "train_or_load"]
