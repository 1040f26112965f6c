"""Baselines every segmentation comparison reports beside its arms (issue 24): what a set gives away without
any encoder.

The colour lookup counts, per class, the training pixels of each colour quantised to ``levels`` levels per
channel (16: 4,096 colours) and labels every test pixel with the class that colour was most often in training
(the maximum a-posteriori class under the empirical joint distribution of colour and class; a colour never seen
in training takes the most frequent class). The patch vote then gives every pixel of a ``patch`` x ``patch``
block the label most of the block's pixels got (ties to the lower class index): the same decision on the
patch grid a ViT segmenter predicts on. When a set's labels can be read off its colours, these come close to a
segmenter and the set cannot show what an encoder learns (the ``mosaic`` set: issue 24).

Scores are the segmenter's: pixel accuracy and mIoU of the accumulated confusion matrix (IPOL sec. 6 reports
the Segmenter's evaluation loss; mIoU as Strudel et al. 2021, sec. 4.1), from :mod:`.metrics`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .metrics import IGNORE_INDEX, SegmentationScores, scores

LEVELS = 16
PATCH = 4


def quantise(images: np.ndarray, levels: int = LEVELS) -> np.ndarray:
    """uint8 RGB (..., 3) -> the index (...) of each pixel's colour cell, ``levels`` cells per channel."""
    q = images.astype(np.int64) * levels // 256
    return (q[..., 0] * levels + q[..., 1]) * levels + q[..., 2]


@dataclass(frozen=True)
class ColourLookup:
    """A fitted lookup: ``table`` (levels**3,) the class of each colour cell, ``counts`` (K, levels**3)."""

    table: np.ndarray
    counts: np.ndarray
    levels: int

    @classmethod
    def fit(cls, images: np.ndarray, masks: np.ndarray, num_classes: int, levels: int = LEVELS) -> "ColourLookup":
        """Counts of (class, colour) over the training pixels ``images`` (N, H, W, 3) uint8 labelled ``masks``
        (N, H, W) (:data:`IGNORE_INDEX` pixels left out)."""
        colour, label = quantise(images, levels).ravel(), np.asarray(masks, np.int64).ravel()
        keep = label != IGNORE_INDEX
        cells = levels ** 3
        counts = np.bincount(label[keep] * cells + colour[keep], minlength=num_classes * cells)
        counts = counts.reshape(num_classes, cells)
        # the most frequent class of each colour; colours never seen take the most frequent class overall
        table = np.where(counts.sum(0) > 0, counts.argmax(0), counts.sum(1).argmax())
        return cls(table, counts, levels)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 -> (N, H, W) int64 class of every pixel."""
        return self.table[quantise(images, self.levels)]


def patch_vote(labels: np.ndarray, num_classes: int, patch: int = PATCH) -> np.ndarray:
    """(N, H, W) labels -> the same with every ``patch`` x ``patch`` block set to its majority label (ties to
    the lower class); H and W must be multiples of ``patch``."""
    n, h, w = labels.shape
    if h % patch or w % patch:
        raise ValueError(f"the image sides ({h}x{w}) must be multiples of patch={patch}")
    blocks = labels.reshape(n, h // patch, patch, w // patch, patch).transpose(0, 1, 3, 2, 4).reshape(-1, patch * patch)
    votes = np.bincount((np.arange(len(blocks))[:, None] * num_classes + blocks).ravel(),
                        minlength=len(blocks) * num_classes).reshape(len(blocks), num_classes)
    winner = votes.argmax(1).reshape(n, h // patch, w // patch)
    return np.repeat(np.repeat(winner, patch, axis=1), patch, axis=2)


def confusion(pred: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) counts of (true class, predicted class) over the pixels whose true label is not ignored."""
    t, p = np.asarray(target, np.int64).ravel(), np.asarray(pred, np.int64).ravel()
    keep = t != IGNORE_INDEX
    return np.bincount(t[keep] * num_classes + p[keep], minlength=num_classes ** 2).reshape(num_classes, num_classes)


@dataclass(frozen=True)
class LookupScores:
    """The colour lookup's scores on a test split: per pixel and with the patch vote."""

    pixel_accuracy: float
    miou: float
    vote_pixel_accuracy: float
    vote_miou: float
    levels: int
    patch: int
    train_pixels: int
    test_pixels: int

    def to_dict(self) -> dict:
        return asdict(self)


def colour_lookup_scores(train_images: np.ndarray, train_masks: np.ndarray, test_images: np.ndarray,
                         test_masks: np.ndarray, num_classes: int, *, levels: int = LEVELS,
                         patch: int = PATCH) -> LookupScores:
    """Fit :class:`ColourLookup` on the training pairs and score it, per pixel and with :func:`patch_vote`,
    on the test pairs (uint8 images (N, H, W, 3), masks (N, H, W))."""
    lookup = ColourLookup.fit(train_images, train_masks, num_classes, levels)
    pred = lookup.predict(test_images)
    plain: SegmentationScores = scores(confusion(pred, test_masks, num_classes))
    voted: SegmentationScores = scores(confusion(patch_vote(pred, num_classes, patch), test_masks, num_classes))
    counted = int((np.asarray(test_masks) != IGNORE_INDEX).sum())
    return LookupScores(plain.pixel_accuracy, plain.miou, voted.pixel_accuracy, voted.miou, levels, patch,
                        int((np.asarray(train_masks) != IGNORE_INDEX).sum()), counted)


__all__ = ["ColourLookup", "LEVELS", "LookupScores", "PATCH", "colour_lookup_scores", "confusion", "patch_vote",
           "quantise"]
