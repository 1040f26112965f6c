"""Segmentation figures (drawing only): image / truth / prediction rows in one class palette, the
per-run loss and score curves, and the evaluation-loss curves of several runs on one axis (IPOL Fig. 12)."""

from __future__ import annotations

import colorsys
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

if TYPE_CHECKING:
    from ..segmentation.loop import SegmentEpochEnd

IGNORE_COLOUR = (0.0, 0.0, 0.0)
#: Epochs are counted from 0 in the figures, as in ``log.csv`` and ``metrics.json``.
EPOCH_LABEL = "epoch (counted from 0, as log.csv)"


def _whole_epochs(*axes) -> None:
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def palette(num_classes: int) -> np.ndarray:
    """(K, 3) RGB colours in [0, 1]: matplotlib's tab20 for up to 20 classes, else evenly spread hues
    (golden-ratio steps) at alternating lightness."""
    if num_classes <= 20:
        from matplotlib import colormaps

        return np.asarray(colormaps["tab20"].colors[:num_classes], dtype=float)
    return np.array([colorsys.hls_to_rgb((k * 0.618034) % 1.0, 0.45 + 0.2 * (k % 2), 0.75)
                     for k in range(num_classes)])


def colour_masks(masks: np.ndarray, num_classes: int) -> np.ndarray:
    """(..., H, W) class indices -> (..., H, W, 3) RGB; labels outside [0, K) (the ignore label) black."""
    colours = np.vstack([palette(num_classes), IGNORE_COLOUR])
    m = np.asarray(masks)
    return colours[np.where((m >= 0) & (m < num_classes), m, num_classes)]


def prediction_figure(images: np.ndarray, truth: np.ndarray, pred: np.ndarray, classes: Sequence[str],
                      title: str = "") -> Figure:
    """One row per image: RGB image (N, H, W, 3) in [0, 1], true and predicted masks (N, H, W) coloured
    with the same palette, and a legend of the classes present."""
    n, k = len(images), len(classes)
    fig = Figure(figsize=(6, 2 * n + 0.6), layout="constrained")
    axes = fig.subplots(n, 3, squeeze=False)
    for row in range(n):
        for col, (panel, name) in enumerate(((images[row], "image"), (colour_masks(truth[row], k), "truth"),
                                             (colour_masks(pred[row], k), "prediction"))):
            ax = axes[row, col]
            ax.imshow(panel, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name)
    present = sorted({int(v) for v in np.unique(np.concatenate([truth.ravel(), pred.ravel()])) if 0 <= v < k})
    if present:
        from matplotlib.patches import Patch

        colours = palette(k)
        fig.legend(handles=[Patch(color=colours[c], label=classes[c]) for c in present], loc="outside lower center",
                   ncol=min(4, len(present)), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def training_curves_figure(history: Sequence[Mapping[str, float]], title: str = "") -> Figure:
    """Training and evaluation cross-entropy per epoch (left) and pixel accuracy / mIoU (right)."""
    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    loss_ax, score_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    loss_ax.plot(epochs, [h["eval_loss"] for h in history], marker="o", label="evaluation")
    loss_ax.set(xlabel=EPOCH_LABEL, ylabel="pixel cross-entropy", title="loss")
    loss_ax.legend()
    score_ax.plot(epochs, [h["pixel_accuracy"] for h in history], marker="o", label="pixel accuracy")
    score_ax.plot(epochs, [h["miou"] for h in history], marker="o", label="mIoU")
    score_ax.set(xlabel=EPOCH_LABEL, ylabel="score", title="evaluation scores", ylim=(0, 1))
    score_ax.legend()
    _whole_epochs(loss_ax, score_ax)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def eval_loss_figure(curves: Mapping[str, Sequence[float]], final_miou: Mapping[str, float] | None = None,
                     title: str = "Segmenter loss on the evaluation set") -> Figure:
    """Several runs' evaluation cross-entropy per epoch on one axis (IPOL Fig. 12); the legend gives each
    run's final mIoU when ``final_miou`` has it."""
    fig = Figure(figsize=(5.5, 3.8), layout="constrained")
    ax = fig.subplots()
    for name, losses in curves.items():
        label = name
        if final_miou and name in final_miou:
            label = f"{name} (final mIoU {100 * final_miou[name]:.1f}%)"
        ax.plot(np.arange(len(losses)), losses, marker="o", markersize=3, label=label)
    ax.set(xlabel=EPOCH_LABEL, ylabel="evaluation cross-entropy", title=title)
    _whole_epochs(ax)
    ax.legend(fontsize=8)
    return fig

def epoch_figures(event: "SegmentEpochEnd") -> None:
    """``finetune(..., on_epoch_end=epoch_figures)``: after every epoch, the training curves (``curves.png``)
    and, when the run has figure images, image / truth / prediction (``predictions.png``) in the run folder."""
    from ..io import save_figure

    save_figure(training_curves_figure(event.history, title=event.title), event.out_dir / "curves.png")
    if event.images is not None:
        fig = prediction_figure(event.images, event.truth, event.predictions, event.classes,
                                title=f"{event.title} - epoch {event.epoch}")
        save_figure(fig, event.out_dir / "predictions.png")


__all__ = ["IGNORE_COLOUR", "colour_masks", "epoch_figures", "eval_loss_figure", "palette", "prediction_figure",
    "training_curves_figure"]
