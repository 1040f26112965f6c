"""Image directories: the ImageFolder layout (one sub-folder of images per class) or a flat folder
of unlabelled images. Files are listed here and decoded when accessed.

Splits: a directory with ``train/`` and ``test/`` (or ``val/``) sub-folders, each in ImageFolder
layout, uses them; otherwise about 20% of the files are held out as the test split, chosen by a
hash of their relative path (see :func:`maelens.data.dataset.is_test_id`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .dataset import RawSet, is_test_id, select_split
from .images import IMAGE_EXTENSIONS

_TEST_DIRS = ("test", "val")


def _image_files(folder: Path, recursive: bool) -> list[Path]:
    files = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
                  and p.is_file())


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _scan(root: Path, prefix: str = "") -> tuple[list[Path], list[str], list[str]]:
    """Image files under ``root``, their class names ("" in a flat folder) and ids (``prefix`` + the
    path relative to ``root``)."""
    dirs = _class_dirs(root)
    files, names = [], []
    if dirs:
        for d in dirs:
            found = _image_files(d, recursive=True)
            files += found
            names += [d.name] * len(found)
    else:
        files = _image_files(root, recursive=False)
        names = [""] * len(files)
    ids = [prefix + f.relative_to(root).as_posix() for f in files]
    return files, names, ids


def read_image_folder(root: Path, split: str) -> RawSet:
    """The ``split`` of an image directory (labels from class sub-folders, -1 for a flat folder)."""
    test_dir = next((root / d for d in _TEST_DIRS if (root / d).is_dir()), None)
    if (root / "train").is_dir() and test_dir is not None:
        train_files, train_names, train_ids = _scan(root / "train", "train/")
        test_files, test_names, test_ids = _scan(test_dir, f"{test_dir.name}/")
        files, names, ids = train_files + test_files, train_names + test_names, train_ids + test_ids
        is_test = np.arange(len(files)) >= len(train_files)
    else:
        files, names, ids = _scan(root)
        is_test = is_test_id(ids)
    if not files:
        raise DataError(f"{root}: no images found (expected class sub-folders of JPEG/PNG files, "
                        f"or image files directly in it)")
    classes = sorted({c for c in names if c})
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index.get(c, -1) for c in names], dtype=np.int64)
    layout = "ImageFolder" if classes else "unlabelled image folder"
    return select_split(RawSet(files, labels, classes, ids, [f"{layout} {root}"]), is_test, split)

__all__ = ["read_image_folder"]
