"""IDX files (the MNIST / Fashion-MNIST format), plain or gzipped.

An IDX file starts with two zero bytes, a type code, the number of dimensions d, then d
big-endian uint32 sizes, then the data: for the usual image files a 16-byte header and for label
files an 8-byte one.
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np

from ..errors import DataError
from .checks import check_labels, check_pixels
from .dataset import RawSet
from .sources import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, FASHION_MNIST_INSTALL

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_PREFIXES = {"train": "train", "test": "t10k"}


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file (``.gz`` decompressed on the fly)."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataError(f"{path}: cannot read IDX file ({err.__class__.__name__}: {err})") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4)) if len(raw) >= header else ()
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = header + math.prod(shape) * dtype.itemsize
    if len(shape) != ndim or len(raw) != expected:
        raise DataError(f"{path}: truncated or oversized IDX file ({len(raw)} bytes, header says {expected})")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find(root: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (root / name).is_file():
            return root / name
    return None


def is_idx_dir(root: Path) -> bool:
    """Whether ``root`` holds MNIST-style ``train-images-idx3-ubyte[.gz]`` files."""
    return _find(root, "train-images-idx3-ubyte") is not None or _find(root, "t10k-images-idx3-ubyte") is not None


def read_idx_dir(root: Path, split: str, classes: list[str] | None = None) -> RawSet:
    """The ``split`` of an MNIST-style directory (``train-*`` / ``t10k-*`` images and labels) as
    uint8 (N, H, W, 1) grayscale images (replicated to RGB when accessed)."""
    parts = ["train", "test"] if split == "all" else [split]
    images, labels, ids = [], [], []
    for part in parts:
        prefix = _PREFIXES[part]
        img_file = _find(root, f"{prefix}-images-idx3-ubyte")
        lab_file = _find(root, f"{prefix}-labels-idx1-ubyte")
        if img_file is None or lab_file is None:
            raise DataError(f"{root}: missing {prefix}-images-idx3-ubyte[.gz] or {prefix}-labels-idx1-ubyte[.gz]")
        img, lab = read_idx(img_file), read_idx(lab_file)
        if img.dtype != np.uint8 or img.ndim != 3 or lab.ndim != 1 or lab.shape[0] != img.shape[0]:
            raise DataError(f"{root}: expected uint8 images (N, H, W) and N labels, got images {img.dtype} "
                            f"{img.shape} in {img_file.name} and labels {lab.shape} in {lab_file.name}")
        check_pixels(img[..., None], str(img_file))
        images.append(img[..., None])
        labels.append(check_labels(lab, img.shape[0], str(lab_file), classes))
        ids += [f"{prefix}/{i}" for i in range(len(lab))]
    label_arr = np.concatenate(labels)
    if classes is None:
        classes = [str(i) for i in range(int(label_arr.max()) + 1)] if len(label_arr) else []
    return RawSet(np.concatenate(images), label_arr, list(classes), ids, [f"IDX files in {root}"])


def read_fashion_mnist(split: str, root: Path | None = None) -> RawSet:
    """Fashion-MNIST from the Debian ``dataset-fashion-mnist`` package (official train/test files)."""
    root = FASHION_MNIST_DIR if root is None else root
    if not is_idx_dir(root):
        raise DataError(f"Fashion-MNIST not found in {root}; install it with `{FASHION_MNIST_INSTALL}` "
                        "or pass the directory holding its IDX files as data=DIR")
    raw = read_idx_dir(root, split, list(FASHION_MNIST_CLASSES))
    raw.sources = ["Fashion-MNIST (Zalando SE, MIT licence), Debian package dataset-fashion-mnist"]
    return raw

__all__ = ["is_idx_dir", "read_fashion_mnist", "read_idx", "read_idx_dir"]
