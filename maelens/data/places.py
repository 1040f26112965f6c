"""Places365 in its file-list format (Zhou et al.), the IPOL paper's Table 3 data (4 of its classes).

A directory holds ``categories_places365.txt`` (lines ``/a/airfield 0``: category path and class
number) and a training list, ``places365_train_standard.txt`` (or ``places365_train_challenge.txt``),
of lines ``/a/airfield/00000001.jpg 0`` (image path and class number); the images lie under
``data_256/`` or ``data_large/`` of that directory, or directly in it. Class names are the category
paths without their initial letter folder (``airfield``, ``baseball_field``,
``apartment_building/outdoor``).

The paper samples its images from the training set, so only the training list is read (the
validation list is not): about 20% of its images are held out as the test split by a hash of their
path, as for an image folder without split folders. A copy laid out as an ImageFolder (one folder
per class, e.g. Places365's "easy format" ``train/`` + ``val/``) is read by the folder reader instead.
Keep the paper's 4 classes with ``DIR:classes=airfield,amphitheater,aquarium,baseball_field``
(:data:`PAPER_CLASSES`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .dataset import RawSet, is_test_id, select_split

CATEGORIES = "categories_places365.txt"
TRAIN_LISTS = ("places365_train_standard.txt", "places365_train_challenge.txt")
IMAGE_DIRS = ("data_256", "data_large", ".")
#: IPOL sec. 6, Table 3: "20000 samples from 4 classes of Places365 training dataset (airfield,
#: amphitheater, aquarium, baseball field)".
PAPER_CLASSES = ("airfield", "amphitheater", "aquarium", "baseball_field")


def _train_list(root: Path) -> Path | None:
    return next((root / name for name in TRAIN_LISTS if (root / name).is_file()), None)


def is_places365_dir(root: Path) -> bool:
    """Whether ``root`` holds Places365's category file and a training list."""
    return (root / CATEGORIES).is_file() and _train_list(root) is not None


def _lines(path: Path) -> list[tuple[str, int]]:
    """``(path, number)`` of each non-empty ``PATH NUMBER`` line."""
    out = []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read ({err})") from err
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, _, number = line.strip().rpartition(" ")
        if not name or not number.isdigit():
            raise DataError(f"{path}, line {n}: expected 'PATH NUMBER', got {line.strip()!r}")
        out.append((name.strip(), int(number)))
    return out


def _class_name(category: str) -> str:
    """``/a/airfield`` -> ``airfield``; ``/a/apartment_building/outdoor`` -> ``apartment_building/outdoor``."""
    parts = category.strip("/").split("/")
    return "/".join(parts[1:]) if len(parts) > 1 and len(parts[0]) == 1 else "/".join(parts)


def read_places365(root: Path, split: str) -> RawSet:
    """The ``split`` of a Places365 file-list directory (see the module docstring)."""
    categories = _lines(root / CATEGORIES)
    numbers = [number for _, number in categories]
    if sorted(numbers) != list(range(len(numbers))):
        raise DataError(f"{root / CATEGORIES}: class numbers must be 0..{len(numbers) - 1}, each once")
    classes = [""] * len(categories)
    for category, number in categories:
        classes[number] = _class_name(category)
    listing = _train_list(root)
    entries = _lines(listing)
    if not entries:
        raise DataError(f"{listing}: no images listed")
    bad = next((e for e in entries if e[1] >= len(classes)), None)
    if bad is not None:
        raise DataError(f"{listing}: {bad[0]} has class {bad[1]}, but {CATEGORIES} lists {len(classes)} classes")
    first = entries[0][0].lstrip("/")
    base = next((root / d for d in IMAGE_DIRS if (root / d / first).is_file()), None)
    if base is None:
        raise DataError(f"{root}: the first listed image, {first}, is in none of "
                        f"{', '.join(d + '/' for d in IMAGE_DIRS if d != '.')} or {root} itself")
    ids = [name.lstrip("/") for name, _ in entries]
    raw = RawSet([base / i for i in ids], np.array([number for _, number in entries], dtype=np.int64), classes,
                 ids, [f"Places365 {listing.name} in {root}"])
    return select_split(raw, is_test_id(ids), split)

__all__ = ["CATEGORIES", "IMAGE_DIRS", "PAPER_CLASSES", "TRAIN_LISTS", "is_places365_dir", "read_places365"]
