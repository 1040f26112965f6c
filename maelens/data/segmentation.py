"""``load_segmentation``: one entry point for every segmentation ``--data`` value (see :data:`SEG_SPEC_HELP`)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..choices import SEG_DEFAULT, SEG_SPEC_HELP
from ..errors import ConfigError, DataError
from .canvas import canvas_raw
from .dataset import balanced_subset
from .load import check_request
from .mosaic import mosaic_raw
from .normalization import IMAGENET_MEAN, IMAGENET_STD
from .segdataset import SegmentationDataset, SegRaw
from .segfolders import ADE20K_CLASSES, is_ade20k, is_mask_folder, read_ade20k, read_mask_folder


def read_segmentation(spec: str, *, image_size: int, split: str,
                      num_classes: int | None = None) -> tuple[SegRaw, dict]:
    """The untransformed pairs of ``spec`` for ``split`` and what the set records about itself."""
    name, _, option = spec.partition(":")
    if name == "mosaic":
        return mosaic_raw(image_size, split, option or "skimage")
    if spec == "canvas":
        return canvas_raw(image_size, split)
    path = Path(spec).expanduser()
    if not path.is_dir():
        what = "not a directory" if path.exists() else "no such file or directory"
        raise DataError(f"{spec}: {what}; expected {SEG_SPEC_HELP}")
    if (root := is_ade20k(path)) is not None:
        if num_classes not in (None, ADE20K_CLASSES):
            raise ConfigError(f"{spec}: ADE20K has {ADE20K_CLASSES} classes; leave the number of classes unset")
        return read_ade20k(root, split), {}
    if is_mask_folder(path):
        return read_mask_folder(path, split, num_classes), {}
    raise DataError(f"{spec}: neither ADE20K (images/training + annotations/training) nor an images/ + masks/ "
                    f"folder; expected {SEG_SPEC_HELP}")


def load_segmentation(spec: str = SEG_DEFAULT, *, image_size: int, split: str = "train", train: bool = False,
                      num_classes: int | None = None, limit: int | None = None, seed: int = 0,
                      mean: Sequence[float] = IMAGENET_MEAN,
                      std: Sequence[float] = IMAGENET_STD) -> SegmentationDataset:
    """The pairs named by ``spec`` for ``split`` ("train", "test" or "all") as a :class:`SegmentationDataset`.

    ``train=True`` adds the joint crop/flip augmentation. ``num_classes`` fixes the class count of a
    generic mask folder (default: largest label + 1). ``limit`` keeps a seeded random subset of that many
    pairs, in their original order.
    """
    check_request(image_size, split, limit)
    if num_classes is not None and num_classes < 2:
        raise ConfigError(f"the number of classes must be at least 2, got {num_classes}")
    raw, info = read_segmentation(spec, image_size=image_size, split=split, num_classes=num_classes)
    if len(raw) == 0:
        raise DataError(f"{spec}: the {split} split holds no images")
    raw = raw.take(balanced_subset(np.full(len(raw), -1), limit, seed))
    return SegmentationDataset(raw, image_size=image_size, train=train, mean=mean, std=std, name=spec, split=split,
                               info=info)

__all__ = ["SEG_DEFAULT", "SEG_SPEC_HELP", "load_segmentation", "read_segmentation"]
