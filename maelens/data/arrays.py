"""``.npz`` image arrays: ``images`` plus optional ``labels``, ``classes``, ``ids`` and ``split``.

``images`` uint8 (N, H, W, 3) (or (N, H, W) / (N, H, W, 1) grayscale) are pixels and go through
the usual transforms; float (N, 3, S, S) are model inputs that are already normalised and are
used as they are. ``split`` (optional, N strings "train"/"test") overrides the default hold-out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .checks import check_inputs, check_labels, check_length, check_npz_sizes, check_pixels
from .dataset import RawSet, is_test_id, select_split


def read_npz(path: Path, split: str) -> RawSet:
    """The ``split`` of an ``.npz`` file of images (see the module docstring for the arrays)."""
    check_npz_sizes(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as err:
        raise DataError(f"{path}: not a readable .npz of plain arrays ({err.__class__.__name__}: {err})") from err
    if "images" not in arrays:
        raise DataError(f"{path}: no 'images' array (found: {', '.join(arrays) or 'nothing'})")
    images = arrays["images"]
    where = str(path)
    if images.dtype == np.uint8:
        if images.ndim == 3:
            images = images[..., None]
        check_pixels(images, where)
        normalized = False
    elif np.issubdtype(images.dtype, np.floating):
        check_inputs(images, where)
        images = images.astype(np.float32, copy=False)
        normalized = True
    else:
        raise DataError(f"{path}: 'images' must be uint8 pixels or float model inputs, got {images.dtype}")
    n = images.shape[0]
    classes_arr = arrays.get("classes", np.array([], dtype=str))
    if classes_arr.ndim != 1 or not (classes_arr.dtype.kind in "US" or classes_arr.size == 0):
        raise DataError(f"{path}: 'classes' must be a list of class names (strings), got {classes_arr.dtype} "
                        f"of shape {classes_arr.shape}")
    classes = [str(c) for c in classes_arr]
    labels = check_labels(arrays.get("labels", np.full(n, -1, np.int64)), n, where, classes)
    ids_arr = arrays.get("ids", np.arange(n))
    if ids_arr.ndim != 1:
        raise DataError(f"{path}: 'ids' must be a list of N={n} identifiers, got shape {ids_arr.shape}")
    check_length(ids_arr, n, where, "ids")
    ids = [str(i) for i in ids_arr]
    if not classes and (labels >= 0).any():
        classes = [str(i) for i in range(int(labels.max()) + 1)]
    if "split" in arrays:
        if arrays["split"].dtype.kind not in "US":
            raise DataError(f"{path}: 'split' must be N={n} strings 'train' or 'test', got {arrays['split'].dtype}")
        names = np.char.lower(arrays["split"].astype(str))
        if names.shape != (n,) or not np.isin(names, ("train", "test")).all():
            raise DataError(f"{path}: 'split' must be N={n} strings 'train' or 'test'")
        is_test = names == "test"
    else:
        is_test = is_test_id(ids)
    raw = RawSet(images, labels.astype(np.int64), classes, ids, [f"arrays in {path}"], normalized)
    return select_split(raw, is_test, split)

__all__ = ["read_npz"]
