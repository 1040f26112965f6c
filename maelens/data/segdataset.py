"""The dataset type of semantic segmentation: images with per-pixel class masks, in memory or as files.

Items are ``(normalised float32 image (3, S, S), int64 mask (S, S))``. Images are resized to S x S
(bicubic, antialiased) and masks with nearest-neighbour interpolation, so a mask only ever holds labels
that were in the file; pixels labelled :data:`~maelens.segmentation.metrics.IGNORE_INDEX` (255) count for
no class. Training adds a joint random resized crop (scale 0.5-1) and horizontal flip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..errors import DataError
from .images import read_image
from .normalization import IMAGENET_MEAN, IMAGENET_STD

IGNORE_INDEX = 255
TRAIN_SCALE = (0.5, 1.0)
LABEL_MODES = ("index", "ade20k")

Stored = Union[np.ndarray, list[Path]]


@dataclass
class SegRaw:
    """One split before transforms: ``images`` uint8 (N, H, W, 3) or N image files; ``masks`` uint8
    (N, H, W) labels or N index-PNG files. ``label_mode``: ``index`` (file values are the classes,
    255 = ignore) or ``ade20k`` (0 = ignore, v -> v - 1)."""

    images: Stored
    masks: Stored
    classes: list[str]
    ids: list[str]
    sources: list[str] = field(default_factory=list)
    label_mode: str = "index"

    def __len__(self) -> int:
        return len(self.images)

    def take(self, indices: Sequence[int] | np.ndarray) -> "SegRaw":
        idx = np.asarray(indices, dtype=np.int64)

        def pick(stored: Stored) -> Stored:
            return [stored[i] for i in idx] if isinstance(stored, list) else stored[idx]

        return SegRaw(pick(self.images), pick(self.masks), self.classes, [self.ids[i] for i in idx], self.sources,
                      self.label_mode)


def read_mask(path: Path) -> np.ndarray:
    """An index PNG (mode L, P or I) as an integer array (H, W); DataError for colour masks or bad files."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            if img.mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
                raise DataError(f"{path}: a mask must be a single-channel index image (mode L or P), got mode {img.mode}")
            return np.array(img, dtype=np.int64)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise DataError(f"{path}: not a readable mask image ({err.__class__.__name__}: {err})") from None


def to_labels(raw: np.ndarray, mode: str, num_classes: int, where: str) -> np.ndarray:
    """File values -> class indices in [0, K) or :data:`IGNORE_INDEX`; DataError naming ``where`` for a
    value out of range."""
    values = raw.astype(np.int64)
    if mode == "ade20k":
        values = np.where(values == 0, IGNORE_INDEX, values - 1)
    bad = (values != IGNORE_INDEX) & ((values < 0) | (values >= num_classes))
    if bad.any():
        found = np.unique(raw[bad])[:5].tolist()
        allowed = f"1..{num_classes} (0 = ignore)" if mode == "ade20k" else f"0..{num_classes - 1} or {IGNORE_INDEX}"
        raise DataError(f"{where}: mask labels {found} are out of range for {num_classes} classes (expected {allowed})")
    return values


def seg_transform(image_size: int, train: bool, mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    """Joint transform of (tv_tensors.Image uint8, tv_tensors.Mask): masks always resized with nearest."""
    s = (image_size, image_size)
    geometry = ([v2.RandomResizedCrop(s, scale=TRAIN_SCALE, antialias=True), v2.RandomHorizontalFlip()] if train
                else [v2.Resize(s, antialias=True)])
    return v2.Compose([*geometry, v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
                       v2.Normalize(list(mean), list(std))])


class SegmentationDataset(Dataset):
    """``ds[i] -> (float32 (3, S, S) normalised image, int64 (S, S) mask)``; attributes ``classes``,
    ``num_classes``, ``ids``, ``name``, ``split``, ``sources``, ``image_size``, ``mean``, ``std``."""

    def __init__(self, raw: SegRaw, *, image_size: int, train: bool = False, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, name: str = "", split: str = "all",
                 info: dict[str, Any] | None = None) -> None:
        if raw.label_mode not in LABEL_MODES:
            raise DataError(f"label_mode must be one of {', '.join(LABEL_MODES)}, got {raw.label_mode!r}")
        if len(raw.masks) != len(raw.images):
            raise DataError(f"{name}: {len(raw.images)} images but {len(raw.masks)} masks")
        self.raw = raw
        self.image_size = int(image_size)
        self.train = bool(train)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.name, self.split = name, split
        self.classes = list(raw.classes)
        self.num_classes = len(self.classes)
        self.ids = list(raw.ids)
        self.sources = list(raw.sources)
        self.info = dict(info or {})
        self.transform = seg_transform(self.image_size, self.train, self.mean, self.std)

    def __len__(self) -> int:
        return len(self.raw)

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The stored image uint8 (H, W, 3) and its labels int64 (H, W) before transforms."""
        image, mask = self.raw.images[index], self.raw.masks[index]
        where = f"{self.name} item {self.ids[index]}"
        if isinstance(mask, Path):
            where = str(mask)
            mask = to_labels(read_mask(mask), self.raw.label_mode, self.num_classes, where)
        if isinstance(image, Path):
            image = read_image(image)
        if image.shape[:2] != mask.shape[:2]:
            raise DataError(f"{where}: the mask is {mask.shape[1]}x{mask.shape[0]} but its image is "
                            f"{image.shape[1]}x{image.shape[0]} (width x height)")
        return image, np.asarray(mask, dtype=np.int64)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.pair(index)
        img = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1))
        out_img, out_mask = self.transform(img, tv_tensors.Mask(torch.from_numpy(mask)))
        return out_img.as_subclass(torch.Tensor), out_mask.as_subclass(torch.Tensor).long()

    def subset(self, indices: Sequence[int] | np.ndarray) -> "SegmentationDataset":
        """The items at ``indices``, same transforms and metadata."""
        return SegmentationDataset(self.raw.take(indices), image_size=self.image_size, train=self.train,
                                   mean=self.mean, std=self.std, name=self.name, split=self.split, info=self.info)

    def describe(self) -> dict[str, Any]:
        """A plain summary for run records."""
        return {"data": self.name, "split": self.split, "num_images": len(self), "image_size": self.image_size,
                "num_classes": self.num_classes, "classes": self.classes, "train_transform": self.train,
                "sources": self.sources, **self.info}

__all__ = ["IGNORE_INDEX", "LABEL_MODES", "SegRaw", "SegmentationDataset", "TRAIN_SCALE", "read_mask",
    "seg_transform", "to_labels"]
