"""Per-iteration learning rate, computed from the fractional epoch as MAE's ``adjust_learning_rate``:
a linear warm-up from 0, then a half-cosine (MAE) or linear (IPOL sec. 4) decay to ``min_lr``."""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError


def lr_at(epoch: float, *, peak_lr: float, epochs: float, warmup_epochs: float, min_lr: float = 0.0,
          schedule: str = "cosine") -> float:
    """Learning rate at fractional ``epoch`` (0 = start of training, ``epochs`` = end)."""
    if epoch < warmup_epochs:
        return peak_lr * epoch / warmup_epochs
    decay_epochs = epochs - warmup_epochs
    progress = min(1.0, (epoch - warmup_epochs) / decay_epochs) if decay_epochs > 0 else 1.0
    if schedule == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * progress))
    elif schedule == "linear":
        factor = 1.0 - progress
    else:
        raise ConfigError(f"schedule must be cosine or linear, got {schedule!r}")
    return min_lr + (peak_lr - min_lr) * factor


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's lr (times its ``lr_scale`` when it has one, as MAE's layer decay)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)

__all__ = ["lr_at", "set_lr"]
