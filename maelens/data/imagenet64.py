"""Downsampled ImageNet (Chrabaszcz, Loshchilov & Hutter 2017) as distributed: the IPOL paper's
pretraining images at 64 x 64 (also the 32 x 32 and 16 x 16 releases).

A directory holds ``train_data_batch_1`` .. ``train_data_batch_10`` and ``val_data``: each a pickled
dict with ``data`` uint8 (N, 3 * S * S), channel-planar (all red values of an image, then green, then
blue, each row-major, as in CIFAR) and ``labels``, N class numbers from 1 to 1000 (``mean`` in the
training batches is not needed). The pickles are read with the CIFAR reader's restricted unpickler,
which rebuilds nothing but numpy arrays and plain containers, so a tampered file cannot run code.
The ``.npz`` release (``train_data_batch_1.npz`` ..., same keys) is read without pickle.

Splits: the training batches are ``train``, ``val_data`` is ``test``. Labels are the class numbers
minus one; the class names are the numbers ("1" .. "1000") since the release ships no names. All
batches of a split are held in memory as uint8 (N, S, S, 3): about 15 GB for the 1.28 million
64 x 64 training images.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import DataError
from .checks import check_npz_sizes
from .cifar import read_pickle
from .dataset import RawSet

TRAIN_PREFIX = "train_data_batch_"
VAL_NAME = "val_data"
NUM_CLASSES = 1000


def _files(root: Path) -> dict[str, list[Path]]:
    """The batch files of each split, pickles or ``.npz``, training batches in numerical order."""
    def number(path: Path) -> int:
        return int(re.sub(r"\D", "", path.stem.removeprefix(TRAIN_PREFIX)) or 0)

    train = [p for p in root.glob(f"{TRAIN_PREFIX}*") if p.is_file() and p.suffix in ("", ".npz")]
    val = [p for p in (root / VAL_NAME, root / f"{VAL_NAME}.npz") if p.is_file()]
    return {"train": sorted(train, key=number), "test": val}


def is_imagenet64_dir(root: Path) -> bool:
    """Whether ``root`` holds downsampled-ImageNet batches (``train_data_batch_1`` or ``val_data``)."""
    return any(_files(root).values())


def _read_batch(path: Path) -> dict:
    if path.suffix == ".npz":
        check_npz_sizes(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except Exception as err:
            raise DataError(f"{path}: not a readable .npz of plain arrays ({err.__class__.__name__}: {err})") from err
    return read_pickle(path)


def _images(path: Path, batch: dict) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, S, S, 3) images and 0-based labels of one checked batch."""
    data = np.asarray(batch.get("data"))
    side = int(round((data.shape[1] / 3) ** 0.5)) if data.ndim == 2 else 0
    if data.dtype != np.uint8 or data.ndim != 2 or side < 1 or 3 * side * side != data.shape[1] \
            or "labels" not in batch:
        raise DataError(f"{path}: expected a downsampled-ImageNet batch with 'data' uint8 (N, 3*S*S) and "
                        f"'labels', got data {data.dtype} {data.shape} and keys {', '.join(batch)}")
    labels = np.asarray(batch["labels"])
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: {data.shape[0]} images but labels {labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < 1 or labels.max() > NUM_CLASSES):
        raise DataError(f"{path}: labels must be class numbers 1..{NUM_CLASSES}, found {labels.min()}..{labels.max()}")
    # channel-planar rows: (N, 3, S, S) -> (N, S, S, 3)
    return data.reshape(-1, 3, side, side).transpose(0, 2, 3, 1), labels.astype(np.int64) - 1


def read_imagenet64(root: Path, split: str) -> RawSet:
    """The ``split`` of a downsampled-ImageNet directory (see the module docstring)."""
    files = _files(root)
    wanted = files["train"] + files["test"] if split == "all" else files[split]
    if not wanted:
        raise DataError(f"{root}: no downsampled-ImageNet {split} batches found (expected "
                        f"{TRAIN_PREFIX}1..10 for train, {VAL_NAME} for test)")
    images, labels, ids = [], [], []
    for path in wanted:
        imgs, labs = _images(path, _read_batch(path))
        if images and imgs.shape[1:] != images[0].shape[1:]:
            raise DataError(f"{path}: {imgs.shape[1]}x{imgs.shape[2]} images, but {wanted[0].name} holds "
                            f"{images[0].shape[1]}x{images[0].shape[2]}")
        images.append(np.ascontiguousarray(imgs))
        labels.append(labs)
        ids += [f"{path.name}/{i}" for i in range(len(labs))]
    classes = [str(k) for k in range(1, NUM_CLASSES + 1)]
    return RawSet(np.concatenate(images), np.concatenate(labels), classes, ids,
                  [f"downsampled ImageNet {images[0].shape[1]}x{images[0].shape[2]} in {root}"])

__all__ = ["NUM_CLASSES", "TRAIN_PREFIX", "VAL_NAME", "is_imagenet64_dir", "read_imagenet64"]
