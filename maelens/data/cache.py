"""On-disk cache of prepared image sets: ``$MAELENS_CACHE_DIR`` (or the older name ``$MAELENS_CACHE``),
default ``~/.cache/maelens``. Each built-in set takes 5-38 MB per image size; deleting the folder only
costs rebuilding the sets on next use."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..io import atomic_path

Arrays = dict[str, np.ndarray]


#: Environment variables that move the cache, in order of precedence (the second is the name before issue 16).
CACHE_VARIABLES = ("MAELENS_CACHE_DIR", "MAELENS_CACHE")


def cache_dir() -> Path:
    """Where prepared data sets are kept: ``$MAELENS_CACHE_DIR``, ``$MAELENS_CACHE`` or ``~/.cache/maelens``."""
    for name in CACHE_VARIABLES:
        if os.environ.get(name):
            return Path(os.environ[name]).expanduser()
    return Path.home() / ".cache" / "maelens"


def cache_path(name: str, key: dict[str, Any]) -> Path:
    """The cache file for ``name`` built with the settings and inputs in ``key``."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / f"{name}-{digest}.npz"


def cached_arrays(name: str, key: dict[str, Any], build: Callable[[], Arrays]) -> tuple[Arrays, Path]:
    """The arrays cached under (``name``, ``key``), built with ``build()`` and stored on first use.

    The file is written atomically, so concurrent processes at worst build it twice; a damaged file
    is rebuilt; an unwritable cache directory only costs a warning.
    """
    path = cache_path(name, key)
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}, path
        except Exception:  # noqa: BLE001 - any unreadable cache file is simply rebuilt
            pass
    arrays = build()
    try:
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, **arrays)
    except OSError as err:
        warnings.warn(f"could not write the data cache {path} ({err}); set MAELENS_CACHE_DIR to a writable folder",
                      stacklevel=2)
    return arrays, path

__all__ = ["CACHE_VARIABLES", "cache_dir", "cache_path", "cached_arrays"]
