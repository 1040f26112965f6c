"""Segmentation sets users already have on disk, as file lists decoded on access.

- ADE20K (SceneParsing / ``ADEChallengeData2016``): ``images/{training,validation}/*.jpg`` and
  ``annotations/{training,validation}/*.png`` index masks, 150 classes, 0 = "other" (ignored), class v
  stored as v (so v - 1 here);
- a generic folder: ``images/`` and ``masks/`` (or ``annotations/``) holding images and index-PNG masks
  of the same stem, either directly (20% held out for testing by a hash of the name, as for image
  folders) or in ``train/`` and ``test/`` (or ``val/``) sub-folders; mask values 0..K-1 are the classes,
  255 is ignored.

Every pair's sizes are checked from the file headers when the set is opened, and a generic folder's
labels by reading each mask once; ADE20K's (about 25,000 files) are checked as each mask is read
(:class:`~maelens.errors.DataError` naming the file).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .dataset import is_test_id
from .images import IMAGE_EXTENSIONS, probe_image
from .segdataset import IGNORE_INDEX, SegRaw, read_mask, to_labels

ADE20K_CLASSES = 150
ADE20K_SPLITS = {"train": "training", "test": "validation"}
IMAGE_DIRS = ("images",)
MASK_DIRS = ("masks", "annotations", "labels")
SPLIT_DIRS = {"train": ("train", "training"), "test": ("test", "val", "validation")}


def _files(folder: Path) -> dict[str, Path]:
    """Image files directly in ``folder`` by stem."""
    return {p.stem: p for p in sorted(folder.iterdir())
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")}


def paired_files(images: Path, masks: Path) -> tuple[list[Path], list[Path], list[str]]:
    """Images and masks of the same stem (sorted), after checking both exist and sizes agree."""
    imgs, msks = _files(images), _files(masks)
    if not imgs:
        raise DataError(f"{images}: no images found")
    missing = sorted(set(imgs) - set(msks))
    if missing:
        raise DataError(f"{masks}: no mask for {len(missing)} image(s), e.g. {imgs[missing[0]].name} "
                        f"(masks are matched to images by file name stem)")
    stems = sorted(imgs)
    for stem in stems:
        a, b = probe_image(imgs[stem]), probe_image(msks[stem])
        if a != b:
            raise DataError(f"{msks[stem]}: the mask is {b[0]}x{b[1]} but its image {imgs[stem].name} is {a[0]}x{a[1]}")
    return [imgs[s] for s in stems], [msks[s] for s in stems], stems


def is_ade20k(path: Path) -> Path | None:
    """The ``ADEChallengeData2016`` root at or inside ``path``, else None."""
    for root in (path, path / "ADEChallengeData2016"):
        if (root / "images" / "training").is_dir() and (root / "annotations" / "training").is_dir():
            return root
    return None


def read_ade20k(root: Path, split: str) -> SegRaw:
    """The ``split`` (train = training, test = validation, all = both) of an ADE20K folder."""
    names = list(ADE20K_SPLITS.values()) if split == "all" else [ADE20K_SPLITS[split]]
    images, masks, ids = [], [], []
    for name in names:
        if not (root / "images" / name).is_dir():
            raise DataError(f"{root}: no images/{name} folder (ADE20K has images/training and images/validation)")
        i, m, s = paired_files(root / "images" / name, root / "annotations" / name)
        images, masks, ids = images + i, masks + m, ids + [f"{name}/{x}" for x in s]
    classes = [f"class {k}" for k in range(1, ADE20K_CLASSES + 1)]
    return SegRaw(images, masks, classes, ids, [f"ADE20K {root}"], label_mode="ade20k")


def _sub(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def is_mask_folder(path: Path) -> bool:
    """Whether ``path`` has the generic layout (an images folder beside a masks folder)."""
    return _sub(path, IMAGE_DIRS) is not None and _sub(path, MASK_DIRS) is not None


def _checked_classes(masks: list[Path], num_classes: int | None) -> int:
    """Read every mask once: the class count (``num_classes``, or the largest label + 1 when None), after
    checking that no label is out of range, so bad data fails before any training."""
    largest = 0
    for path in masks:
        labels = np.unique(read_mask(path))
        labels = labels[labels != IGNORE_INDEX]
        if num_classes is not None:
            to_labels(labels, "index", num_classes, str(path))
        largest = max(largest, int(labels.max(initial=0)))
    return num_classes if num_classes is not None else largest + 1


def read_mask_folder(root: Path, split: str, num_classes: int | None) -> SegRaw:
    """The ``split`` of a generic images + index-masks folder; ``num_classes=None`` takes the largest
    label found in the masks plus one (every mask is read once, to check or find the labels)."""
    images_dir, masks_dir = _sub(root, IMAGE_DIRS), _sub(root, MASK_DIRS)
    if images_dir is None or masks_dir is None:
        raise DataError(f"{root}: expected an images/ folder and a masks/ (or annotations/) folder")
    split_dirs = {s: _sub(images_dir, names) for s, names in SPLIT_DIRS.items()}
    if all(split_dirs.values()):
        images, masks, ids, test = [], [], [], []
        for s, folder in split_dirs.items():
            mask_sub = masks_dir / folder.name
            if not mask_sub.is_dir():
                raise DataError(f"{masks_dir}: no {folder.name}/ folder matching {folder}")
            i, m, stems = paired_files(folder, mask_sub)
            images, masks, ids, test = images + i, masks + m, ids + [f"{folder.name}/{x}" for x in stems], \
                test + [s == "test"] * len(i)
        is_test = np.asarray(test, dtype=bool)
    else:
        images, masks, ids = paired_files(images_dir, masks_dir)
        is_test = is_test_id(ids)
    num_classes = _checked_classes(masks, num_classes)
    if num_classes < 2:
        raise DataError(f"{root}: {num_classes} class(es); a segmentation set needs at least 2")
    raw = SegRaw(images, masks, [f"class {k}" for k in range(num_classes)], ids, [f"mask folder {root}"])
    if split == "all":
        return raw
    return raw.take(np.flatnonzero(is_test if split == "test" else ~is_test))

__all__ = ["ADE20K_CLASSES", "ADE20K_SPLITS", "IMAGE_DIRS", "MASK_DIRS", "SPLIT_DIRS", "is_ade20k",
    "is_mask_folder", "paired_files", "read_ade20k", "read_mask_folder"]
