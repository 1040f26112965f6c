"""Evaluation of a segmenter on a split: the cross-entropy loss (the quantity of IPOL Fig. 12) and the
confusion-matrix scores of :mod:`.metrics`, summed over every evaluated pixel (and over processes under DDP)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from .metrics import IGNORE_INDEX, ConfusionMeter, SegmentationScores


@dataclass(frozen=True)
class EvalResult:
    """``loss``: mean pixel cross-entropy over non-ignored pixels; ``scores``: pixel accuracy, IoUs, mIoU."""

    loss: float
    scores: SegmentationScores

    def to_dict(self) -> dict[str, object]:
        return {"eval_loss": self.loss, "pixel_accuracy": self.scores.pixel_accuracy, "miou": self.scores.miou}


def pixel_cross_entropy(logits: torch.Tensor, masks: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of logits (B, K, H, W) against masks (B, H, W), ignoring :data:`IGNORE_INDEX` pixels,
    computed in float32 (also under bf16 autocast)."""
    return F.cross_entropy(logits.float(), masks, ignore_index=IGNORE_INDEX, reduction=reduction)


@torch.no_grad()
def evaluate_segmenter(model: torch.nn.Module, dataset: Dataset, num_classes: int, *, batch_size: int = 64,
                       device: torch.device | str = "cpu", rank: int = 0, world_size: int = 1,
                       autocast: Callable[[], AbstractContextManager] = nullcontext) -> EvalResult:
    """Loss and scores of ``model`` on ``dataset`` (items ``(image, mask)``). Under DDP each of the
    ``world_size`` processes takes every ``world_size``-th item and the sums are all-reduced, so every
    item counts exactly once."""
    was_training = model.training
    model.eval()
    shard = dataset if world_size == 1 else Subset(dataset, range(rank, len(dataset), world_size))
    meter = ConfusionMeter(num_classes, device=device)
    total = torch.zeros(2, dtype=torch.float64, device=device)  # summed loss, counted pixels
    for imgs, masks in DataLoader(shard, batch_size=batch_size, shuffle=False):
        imgs, masks = imgs.to(device), masks.to(device)
        with autocast():
            logits = model(imgs)
        total[0] += pixel_cross_entropy(logits, masks, reduction="sum").double()
        total[1] += (masks != IGNORE_INDEX).sum()
        meter.update(logits, masks)
    if world_size > 1:
        dist.all_reduce(total)
        dist.all_reduce(meter.matrix)
    model.train(was_training)
    loss = float(total[0] / total[1]) if total[1] > 0 else float("nan")
    return EvalResult(loss, meter.scores())

__all__ = ["EvalResult", "evaluate_segmenter", "pixel_cross_entropy"]
