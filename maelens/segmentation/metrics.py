"""Semantic-segmentation metrics from a confusion matrix accumulated over a whole evaluation split.

The definitions are those the Segmenter paper reports (Strudel et al. 2021, sec. 4.1 "Metrics": mean
Intersection over Union, computed by mmsegmentation's ``mean_iou``) and the pixel accuracy of the same
code (mmseg's ``aAcc``): areas are summed over every image of the split first, then divided; classes
whose union is empty (absent from both the prediction and the truth everywhere) give an undefined IoU and
are left out of the mean; pixels carrying the ignore label count nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError

#: The label of pixels that count for no class (mmseg's ``ignore_index``; ADE20K's 0 "other" maps to it).
IGNORE_INDEX = 255


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """(K, K) int64 counts, rows = true class, columns = predicted class, of the pixels of ``pred`` and
    ``target`` (same shape, integer class indices) whose true label is not ``ignore_index``."""
    if pred.shape != target.shape:
        raise ConfigError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    keep = target != ignore_index
    t, p = target[keep].long(), pred[keep].long()
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_classes):
        raise ConfigError(f"target labels must be in [0, {num_classes}) or {ignore_index}; "
                          f"got {int(t.min())}..{int(t.max())}")
    return torch.bincount(t * num_classes + p, minlength=num_classes ** 2).reshape(num_classes, num_classes)


@dataclass(frozen=True)
class SegmentationScores:
    """The scores of one confusion matrix: ``pixel_accuracy``, per-class ``iou`` (NaN where the class
    is absent from prediction and truth), their mean ``miou`` over defined classes, and the number of
    ``pixels`` counted."""

    pixel_accuracy: float
    miou: float
    iou: np.ndarray
    pixels: int

    def to_dict(self) -> dict[str, object]:
        return {"pixel_accuracy": self.pixel_accuracy, "miou": self.miou, "iou": self.iou.tolist(),
                "pixels": self.pixels}


def pixel_accuracy(confusion: np.ndarray | torch.Tensor) -> float:
    """Correct pixels / counted pixels: trace(C) / sum(C) (mmseg's ``aAcc``, the overall pixel accuracy
    of Long et al. 2015 used by the Segmenter paper's evaluation code); NaN when nothing was counted."""
    c = np.asarray(confusion, dtype=np.float64)
    total = c.sum()
    return float(np.trace(c) / total) if total else float("nan")


def class_iou(confusion: np.ndarray | torch.Tensor) -> np.ndarray:
    """(K,) IoU_k = TP_k / (TP_k + FP_k + FN_k) = C[k, k] / (row_k + column_k - C[k, k]) (Segmenter,
    Strudel et al. 2021, sec. 4.1, as computed by mmseg's ``mean_iou``); NaN for a class absent from both
    the prediction and the truth (empty union)."""
    c = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(c)
    union = c.sum(axis=0) + c.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.where(union > 0, union, 1.0), np.nan)


def mean_iou(confusion: np.ndarray | torch.Tensor) -> float:
    """Mean of :func:`class_iou` over the classes where it is defined (mmseg's ``nanmean``, Segmenter's
    mIoU); NaN when no class is."""
    iou = class_iou(confusion)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def scores(confusion: np.ndarray | torch.Tensor) -> SegmentationScores:
    """Pixel accuracy, per-class IoU and mIoU of one accumulated confusion matrix."""
    c = np.asarray(confusion)
    return SegmentationScores(pixel_accuracy(c), mean_iou(c), class_iou(c), int(c.sum()))


class ConfusionMeter:
    """Accumulates a (K, K) confusion matrix over batches of logits (B, K, H, W) or predictions (B, H, W)."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, device: torch.device | str = "cpu"):
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, logits_or_pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch; logits (B, K, H, W) are turned into predictions by argmax over classes."""
        pred = logits_or_pred.argmax(1) if logits_or_pred.ndim == target.ndim + 1 else logits_or_pred
        self.matrix += confusion_matrix(pred, target, self.num_classes, self.ignore_index).to(self.matrix.device)

    def scores(self) -> SegmentationScores:
        return scores(self.matrix.cpu().numpy())

__all__ = ["ConfusionMeter", "IGNORE_INDEX", "SegmentationScores", "class_iou", "confusion_matrix", "mean_iou",
    "pixel_accuracy", "scores"]
