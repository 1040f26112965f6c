"""CIFAR-10 / CIFAR-100 "python version" batch directories, read with a restricted unpickler.

The batches are pickled dicts of numpy arrays and lists. The unpickler resolves only the few
globals that rebuild plain numpy arrays; anything else (arbitrary callables, classes) is refused,
so a tampered file cannot run code.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .checks import check_labels, check_length
from .dataset import RawSet


def _allowed_globals() -> dict[tuple[str, str], Any]:
    import _codecs

    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric
    rebuild = {"_reconstruct": multiarray._reconstruct, "scalar": multiarray.scalar}
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                                           ("_codecs", "encode"): _codecs.encode}
    for core in ("numpy.core", "numpy._core"):
        allowed.update({(f"{core}.multiarray", k): v for k, v in rebuild.items()})
        allowed[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


class _Refused(Exception):
    pass


class _RestrictedUnpickler(pickle.Unpickler):
    _allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None


def read_pickle(path: str | Path) -> dict[str, Any]:
    """A pickled dict of arrays/lists/strings (Python 2 or 3), with bytes keys decoded to str.

    Raises :class:`DataError` when the file needs anything beyond numpy array reconstruction.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            obj = _RestrictedUnpickler(f, encoding="latin1").load()
    except _Refused as err:
        raise DataError(f"{path}: refused for safety: the pickle needs {err}, which is not a plain container "
                        "or numpy array (only batches of arrays and lists, as CIFAR and downsampled ImageNet "
                        "ship, are read)") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from err
    except Exception as err:
        raise DataError(f"{path}: not a readable pickle ({err.__class__.__name__}: {err})") from err
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a pickled dict (a batch of images), got {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _names(values: Any, where: Path, key: str) -> list[str]:
    """A list of names (bytes or str) stored under ``key``; anything else (a scalar, a nested array) refused."""
    if not isinstance(values, (list, tuple, np.ndarray)) or np.ndim(values) != 1:
        raise DataError(f"{where}: '{key}' must be a list of names, got {type(values).__name__}")
    return [v.decode("latin1") if isinstance(v, bytes) else str(v) for v in values]


def _batch_number(path: Path) -> int:
    return int(re.sub(r"\D", "", path.name) or 0)


_ANNOUNCED = re.compile(r"batch (\d+) of (\d+)")


def _check_announced(train: list[Path], root: Path) -> None:
    """Refuse a CIFAR-10 folder whose training batches have a gap (data_batch_1, 2, 4) or fewer batches than
    they announce (``batch_label`` "training batch 1 of 5"): the train split would silently hold part of the
    set (issue 30)."""
    numbers = [_batch_number(f) for f in train]
    expected = list(range(1, len(numbers) + 1))
    announced = None
    if train:
        label = read_pickle(train[0]).get("batch_label", b"")
        found = _ANNOUNCED.search(label.decode("latin1") if isinstance(label, bytes) else str(label))
        announced = int(found.group(2)) if found else None
    if announced is not None and announced < 10_000:
        expected = list(range(1, announced + 1))
    missing = [f"data_batch_{k}" for k in expected if k not in numbers]
    if missing:
        said = f" ({train[0].name} says it is one of {announced})" if announced is not None else ""
        raise DataError(f"{root}: {', '.join(missing)} missing from the CIFAR training batches{said}; the train "
                        f"split would hold only {len(numbers)} of {len(expected)} batches: restore the missing files, "
                        "or save the images you mean to use as a .npz")


def is_cifar_dir(root: Path) -> bool:
    """Whether ``root`` looks like an extracted ``cifar-10-batches-py`` or ``cifar-100-python``."""
    return (root / "batches.meta").is_file() or (root / "data_batch_1").is_file() or \
        all((root / f).is_file() for f in ("train", "test", "meta"))


def read_cifar(root: Path, split: str) -> RawSet:
    """The ``split`` images of a CIFAR batches directory: uint8 (N, 32, 32, 3), labels, class names.

    CIFAR-10: ``data_batch_1..5`` (train), ``test_batch`` (test), names from ``batches.meta``.
    CIFAR-100: ``train``, ``test``, fine labels and names from ``meta``.
    """
    cifar100 = not (root / "batches.meta").is_file() and (root / "meta").is_file()
    if cifar100:
        files = {"train": [root / "train"], "test": [root / "test"]}
        meta_file, label_key, names_key = root / "meta", "fine_labels", "fine_label_names"
    else:
        files = {"train": sorted(root.glob("data_batch_*"), key=_batch_number), "test": [root / "test_batch"]}
        meta_file, label_key, names_key = root / "batches.meta", "labels", "label_names"
    wanted = files["train"] + files["test"] if split == "all" else files[split]
    wanted = [f for f in wanted if f.is_file()]
    if not wanted:
        raise DataError(f"{root}: no CIFAR {split} batches found (expected "
                        f"{'train/test' if cifar100 else 'data_batch_1..5 / test_batch'})")
    if split != "test" and not cifar100:
        _check_announced(files["train"], root)
    images, labels, ids = [], [], []
    for f in wanted:
        batch = read_pickle(f)
        data = np.asarray(batch.get("data"))
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or label_key not in batch:
            raise DataError(f"{f}: expected a CIFAR batch with 'data' uint8 (N, 3072) and '{label_key}', "
                            f"got data {data.dtype} {data.shape} and keys {', '.join(batch)}")
        lab = check_labels(batch[label_key], data.shape[0], str(f), name=label_key)
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(lab)
        names = _names(batch["filenames"], f, "filenames") if "filenames" in batch else [str(i) for i in range(len(lab))]
        check_length(names, len(lab), str(f), "filenames")
        ids += [f"{f.name}/{n}" for n in names]
    classes = _names(read_pickle(meta_file).get(names_key, []), meta_file, names_key) if meta_file.is_file() else []
    label_arr = np.concatenate(labels)
    if classes:
        check_labels(label_arr, len(label_arr), str(meta_file), classes, name=label_key)
    elif len(label_arr):
        classes = [str(i) for i in range(int(label_arr.max()) + 1)]
    return RawSet(np.ascontiguousarray(np.concatenate(images)), label_arr, classes, ids,
                  [f"CIFAR-{100 if cifar100 else 10} batches in {root}"])

__all__ = ["is_cifar_dir", "read_cifar", "read_pickle"]
