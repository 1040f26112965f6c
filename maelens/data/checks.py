"""Checks of the arrays a data file holds, applied by every reader before the arrays are used (issue 29):
a file's metadata (its shapes, dtypes and lengths) is not trusted. One message style:
``FILE: 'NAME' must be ..., got ...``.

Labels are bounded too (issue 30): a label must name one of the set's classes (or be -1, unlabelled), so a
set with more labels than class names, or a label of a billion that would make a billion class names, is
refused instead of being reported with invented classes.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import DataError

#: Most classes a labelled set may have when it names none (ImageNet-21k has 21,841).
MAX_CLASSES = 100_000


def check_pixels(images: Any, where: str, name: str = "images") -> None:
    """uint8 pixels (N, H, W, C) with C in {1, 3} and H, W >= 1 (an image of zero rows or columns has nothing
    to resize or crop)."""
    shape = tuple(getattr(images, "shape", ()))
    dtype = getattr(images, "dtype", None)
    if dtype != np.uint8 or len(shape) != 4 or shape[3] not in (1, 3):
        raise DataError(f"{where}: '{name}' must be uint8 pixels (N, H, W, 3) or (N, H, W, 1), got "
                        f"{dtype} {shape}")
    if shape[1] < 1 or shape[2] < 1:
        raise DataError(f"{where}: '{name}' must have a height and width of at least 1 pixel, got {shape[1]}x{shape[2]}")


def check_inputs(images: Any, where: str, image_size: int | None = None, name: str = "images") -> None:
    """Float model inputs (N, 3, S, S), square, S >= 1, every value finite (and S == ``image_size`` when given)."""
    shape = tuple(getattr(images, "shape", ()))
    if len(shape) != 4 or shape[1] != 3 or shape[2] != shape[3] or shape[2] < 1:
        raise DataError(f"{where}: float '{name}' are normalised model inputs and must be (N, 3, S, S) with S >= 1, "
                        f"got {shape}")
    finite = np.isfinite(images).reshape(shape[0], -1).all(axis=1) if shape[0] else np.ones(0, bool)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise DataError(f"{where}: {len(bad)} of {shape[0]} images with NaN or infinite values (first: image "
                        f"{bad[0]}); nothing computed from them can be meaningful: fix or remove those images")
    if image_size is not None and shape[2] != image_size:
        raise DataError(f"{where}: float '{name}' are used as model inputs as they are, so they must be "
                        f"(N, 3, {image_size}, {image_size}); got (N, {', '.join(map(str, shape[1:]))})")


def check_labels(labels: Any, n: int, where: str, classes: Sequence[str] | None = None,
                 name: str = "labels") -> np.ndarray:
    """``labels`` as int64 (N,): integers (not strings, floats or a scalar), one per image, each -1 (unlabelled)
    or a class index: below ``len(classes)`` when the set names its classes, else below :data:`MAX_CLASSES`."""
    arr = np.asarray(labels) if not isinstance(labels, np.ndarray) else labels
    if arr.ndim != 1 or arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
        raise DataError(f"{where}: '{name}' must be a list of N={n} integers, got {arr.dtype} of shape {arr.shape}")
    if arr.shape[0] != n:
        raise DataError(f"{where}: '{name}' must have one entry per image: {n} images but {arr.shape[0]} labels")
    arr = arr.astype(np.int64, copy=False)
    if arr.size:
        low, high = int(arr.min()), int(arr.max())
        limit = len(classes) if classes else MAX_CLASSES
        if low < -1 or high >= limit:
            bad = low if low < -1 else high
            what = (f"the {len(classes)} class names ({_few(classes)})" if classes
                    else f"at most {MAX_CLASSES:,} classes")
            raise DataError(f"{where}: label {bad} names no class: labels must be -1 (unlabelled) or 0..{limit - 1} "
                            f"for {what}")
    return arr


def check_length(values: Sequence[Any], n: int, where: str, name: str) -> None:
    """One entry of ``name`` per image."""
    if len(values) != n:
        raise DataError(f"{where}: '{name}' must have one entry per image: {n} images but {len(values)} {name}")


def check_npz_sizes(path: str | Path) -> None:
    """Refuse an ``.npz`` whose arrays announce more than they hold or than this machine can hold, before any
    is read (issue 29: a compressed archive of a few KB can announce gigabytes of zeros): each member's
    ``.npy`` header gives its shape and dtype, whose size must fit the member's declared size, and all
    together this machine's memory. Files that are not zip archives are left to the reader's own error."""
    from ..validation import gib, memory_bytes

    total = 0
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError):
        return
    with archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            name = info.filename[:-4]
            try:
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                        np.lib.format.read_array_header_2_0
                    shape, _, dtype = read(member)
            except (ValueError, OSError, EOFError, zipfile.BadZipFile):
                raise DataError(f"{path}: array '{name}' has an unreadable header (a damaged .npz?)") from None
            size = math.prod(shape) * dtype.itemsize
            if not dtype.hasobject and size > info.file_size:
                raise DataError(f"{path}: array '{name}' announces shape {tuple(shape)} ({gib(size)}) but its entry "
                                f"holds {gib(info.file_size)}: a truncated or altered file")
            total += size
    memory = memory_bytes()
    if memory is not None and total > memory:
        raise DataError(f"{path}: its arrays announce {gib(total)}, more than this machine's {gib(memory)} of memory")


def _few(names: Sequence[str], n: int = 3) -> str:
    return ", ".join(map(str, names[:n])) + (", ..." if len(names) > n else "")


__all__ = ["MAX_CLASSES", "check_inputs", "check_labels", "check_length", "check_npz_sizes", "check_pixels"]
