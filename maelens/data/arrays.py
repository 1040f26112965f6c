"""``.npz`` image arrays: ``images`` plus optional ``labels``, ``classes``, ``ids`` and ``split``.

``images`` uint8 (N, H, W, 3) (or (N, H, W) / (N, H, W, 1) grayscale) are pixels and go through
the usual transforms; float (N, 3, S, S) are model inputs that are already normalised and are
used as they are. ``split`` (optional, N strings "train"/"test") overrides the default hold-out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .dataset import RawSet, is_test_id, select_split


def read_npz(path: Path, split: str) -> RawSet:
    """The ``split`` of an ``.npz`` file of images (see the module docstring for the arrays)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as err:
        raise DataError(f"{path}: not a readable .npz of plain arrays ({err.__class__.__name__}: {err})") from err
    if "images" not in arrays:
        raise DataError(f"{path}: no 'images' array (found: {', '.join(arrays) or 'nothing'})")
    images = arrays["images"]
    if images.dtype == np.uint8:
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4 or images.shape[3] not in (1, 3):
            raise DataError(f"{path}: uint8 'images' must be (N, H, W, 3) or grayscale (N, H, W); got {images.shape}")
        normalized = False
    elif np.issubdtype(images.dtype, np.floating):
        if images.ndim != 4 or images.shape[1] != 3:
            raise DataError(f"{path}: float 'images' are normalised model inputs and must be (N, 3, S, S); "
                            f"got {images.shape}")
        images = images.astype(np.float32, copy=False)
        normalized = True
    else:
        raise DataError(f"{path}: 'images' must be uint8 pixels or float model inputs, got {images.dtype}")
    n = images.shape[0]
    labels = arrays.get("labels", np.full(n, -1, np.int64))
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: 'labels' must be N={n} integers, got {labels.dtype} {labels.shape}")
    ids = [str(i) for i in arrays["ids"]] if "ids" in arrays else [str(i) for i in range(n)]
    if len(ids) != n:
        raise DataError(f"{path}: 'ids' must have N={n} entries, got {len(ids)}")
    classes = [str(c) for c in arrays.get("classes", [])]
    if not classes and (labels >= 0).any():
        classes = [str(i) for i in range(int(labels.max()) + 1)]
    if "split" in arrays:
        names = np.char.lower(arrays["split"].astype(str))
        if names.shape != (n,) or not np.isin(names, ("train", "test")).all():
            raise DataError(f"{path}: 'split' must be N={n} strings 'train' or 'test'")
        is_test = names == "test"
    else:
        is_test = is_test_id(ids)
    raw = RawSet(images, labels.astype(np.int64), classes, ids, [f"arrays in {path}"], normalized)
    return select_split(raw, is_test, split)

__all__ = ["read_npz"]
