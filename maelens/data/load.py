"""``load_dataset``: one entry point for every ``--data`` value."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ConfigError, DataError
from ..paths import check_input
from ..validation import FLOAT_BYTES, MAX_IMAGE_SIDE, gib
from .arrays import read_npz
from .cifar import is_cifar_dir, read_cifar
from .dataset import SPLITS, ImageDataset, RawSet, balanced_subset, select_classes, select_split
from .folder import read_image_folder
from .idx import is_idx_dir, read_fashion_mnist, read_idx_dir
from .imagenet64 import is_imagenet64_dir, read_imagenet64
from .images import probe_image
from .normalization import IMAGENET_MEAN, IMAGENET_STD
from .places import is_places365_dir, read_places365
from .sources import DATASET_SOURCES, WALLPAPER_COLLECTIONS
from .tiles import TILES_PER_SIDE, load_bundled, load_tiles, opencv_photos, skimage_photos, wallpaper_photos

BUILTIN = ("bundled", "photos", "backgrounds", "fashion-mnist", "canvas")
SPEC_HELP = ("bundled, photos[:K|full], backgrounds[:K|full], fashion-mnist, canvas[:N] (N unlabelled canvases of "
             "Fashion-MNIST items on photographs), an ImageFolder directory, "
             "a CIFAR batches directory, a downsampled-ImageNet batches directory, a Places365 file-list "
             "directory, an MNIST-style IDX directory, or a .npz file; any of them followed by "
             ":classes=A,B,... keeps those classes")
#: Spec suffix that keeps some classes: ``DIR:classes=airfield,amphitheater``.
CLASSES_OPTION = ":classes="


def load_dataset(spec: str = "bundled", *, image_size: int, split: str = "train", train: bool = False,
                 limit: int | None = None, seed: int = 0, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, quiet: bool = True) -> ImageDataset:
    """The images named by ``spec`` (see :data:`SPEC_HELP`) for ``split`` ("train", "test" or "all").

    ``train=True`` gives the MAE pretraining augmentation, otherwise the evaluation transform.
    ``limit`` keeps a seeded, class-balanced subset of that many images (same ``seed``, same
    subset), in their original order. Built-in sets are prepared once and cached; ``quiet=False``
    shows progress while preparing.
    """
    check_request(image_size, split, limit)
    raw = read_raw(spec, image_size=image_size, split=split, quiet=quiet)
    if len(raw) == 0:
        raise DataError(f"{spec}: the {split} split holds no images")
    raw = raw.take(balanced_subset(raw.labels, limit, seed))
    if isinstance(raw.images, list):
        for path in raw.images:
            probe_image(path)
    return ImageDataset(raw, image_size=image_size, train=train, mean=mean, std=std, name=spec, split=split)


def check_request(image_size: int, split: str, limit: int | None) -> None:
    """ConfigError unless ``image_size`` is a positive integer, ``split`` one of :data:`SPLITS` and
    ``limit`` None or positive (the arguments every loader takes)."""
    if not isinstance(image_size, int) or image_size < 1:
        raise ConfigError(f"image_size must be a positive integer, got {image_size!r}")
    if image_size > MAX_IMAGE_SIDE:
        raise ConfigError(f"image_size={image_size} is over the limit of {MAX_IMAGE_SIDE:,} pixels a side: one such "
                          f"RGB image alone would take {gib(3 * image_size * image_size * FLOAT_BYTES)} as model input")
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if limit is not None and limit < 1:
        raise ConfigError(f"the number of images (limit) must be at least 1, got {limit}")


def read_raw(spec: str, *, image_size: int, split: str, quiet: bool = True) -> RawSet:
    """The untransformed images of ``spec`` for ``split``."""
    base, found, wanted = spec.partition(CLASSES_OPTION)
    if found:
        names = [n.strip() for n in wanted.split(",") if n.strip()]
        if not names:
            raise ConfigError(f"{spec}: name at least one class after {CLASSES_OPTION}")
        return select_classes(read_raw(base, image_size=image_size, split=split, quiet=quiet), names, spec)
    name, _, option = spec.partition(":")
    if name == "bundled" and not option:
        arrays, path = load_bundled(image_size)
        return _from_arrays(arrays, split, [f"scikit-image photographs (bundled crops, cached in {path})"])
    if name in ("photos", "backgrounds"):
        per_side = _per_side(spec, option)
        photos = wallpaper_photos() if name == "backgrounds" else \
            skimage_photos(tiles=True) + wallpaper_photos() + opencv_photos()
        if not photos:
            raise DataError("no wallpaper photographs are installed for data=backgrounds; install them with "
                            f"`{'; '.join(c.install for c in WALLPAPER_COLLECTIONS)}` (or use data=photos)")
        arrays, path = load_tiles(name, image_size, photos, per_side, quiet)
        return _from_arrays(arrays, split, [f"{len(photos)} photographs tiled (cached in {path})"])
    if spec == "fashion-mnist":
        return read_fashion_mnist(split)
    if name == "canvas":
        from .canvas import canvas_images

        return canvas_images(image_size, split, option)
    path = Path(spec).expanduser()
    if os.path.lexists(path) or path.exists():  # a FIFO, a device, a loop or an unreadable folder: refused here
        path = check_input(path, "data")
    if path.suffix.lower() == ".npz" and path.is_file():
        return read_npz(path, split)
    if path.is_dir():
        if is_cifar_dir(path):
            return read_cifar(path, split)
        if is_imagenet64_dir(path):
            return read_imagenet64(path, split)
        if is_places365_dir(path):
            return read_places365(path, split)
        if is_idx_dir(path):
            return read_idx_dir(path, split)
        return read_image_folder(path, split)
    if path.exists():
        raise DataError(f"{spec}: not a .npz file or a directory; expected {SPEC_HELP}")
    raise DataError(f"{spec}: no such file or directory; expected {SPEC_HELP}")


def _per_side(spec: str, option: str) -> int | None:
    if not option:
        return TILES_PER_SIDE
    if option == "full":
        return None
    if option.isdigit() and int(option) > 0:
        return int(option)
    raise ConfigError(f"{spec}: expected {spec.partition(':')[0]}:K with K a positive number of tiles along the "
                      "shorter side of each photo, or :full for the native resolution")


def _from_arrays(arrays: dict[str, np.ndarray], split: str, sources: list[str]) -> RawSet:
    raw = RawSet(arrays["images"], arrays["labels"], arrays["classes"].tolist(), arrays["ids"].tolist(),
                 sources + [str(s) for s in arrays["sources"]])
    return select_split(raw, arrays["test"], split)


def describe_builtin() -> list[dict[str, str]]:
    """One row per built-in ``--data`` value: spec, summary, labels, split, licence, install hint."""
    return [{"spec": s.spec, "summary": s.summary, "labels": s.labels, "split": s.split, "licence": s.licence,
             "install": s.install} for s in DATASET_SOURCES.values()]

__all__ = ["BUILTIN", "CLASSES_OPTION", "SPEC_HELP", "check_request", "describe_builtin", "load_dataset",
    "read_raw"]
