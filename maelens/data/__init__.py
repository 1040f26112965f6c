"""Datasets: the bundled offline photographs, Debian photo and Fashion-MNIST packages, and the
formats users already have (ImageFolder, CIFAR batches, downsampled-ImageNet batches, Places365
file lists, IDX, ``.npz``). Sources and licences are
listed in ``SOURCES.md`` and :data:`DATASET_SOURCES`.

``load_dataset(spec, image_size=..., split=..., train=...)`` returns an :class:`ImageDataset`
whose items are ``(normalised float32 (3, S, S) image, label or -1)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

# Lazy names (PEP 562): ``from maelens.data.normalization import IMAGENET_MEAN`` (what the presets do) must not
# load the readers, PIL and torch; each name below loads its module on first use.
_LAZY = {
    "IMAGENET_MEAN": "normalization", "IMAGENET_STD": "normalization", "denormalize": "normalization",
    "cache_dir": "cache",
    "SPLITS": "dataset", "ImageDataset": "dataset", "RawSet": "dataset", "balanced_subset": "dataset",
    "load_image": "images", "read_image": "images",
    "BUILTIN": "load", "SPEC_HELP": "load", "describe_builtin": "load", "load_dataset": "load",
    "DATASET_SOURCES": "sources", "PHOTO_COLLECTIONS": "sources", "DatasetSource": "sources", "Photo": "sources",
    "PhotoCollection": "sources",
    "eval_transform": "transforms", "pretrain_transform": "transforms",
}

if TYPE_CHECKING:
    from .cache import cache_dir
    from .dataset import SPLITS, ImageDataset, RawSet, balanced_subset
    from .images import load_image, read_image
    from .load import BUILTIN, SPEC_HELP, describe_builtin, load_dataset
    from .normalization import IMAGENET_MEAN, IMAGENET_STD, denormalize
    from .sources import DATASET_SOURCES, PHOTO_COLLECTIONS, DatasetSource, Photo, PhotoCollection
    from .transforms import eval_transform, pretrain_transform


__getattr__ = lazy_names(__name__, _LAZY)


__all__ = [
    "BUILTIN", "DATASET_SOURCES", "DatasetSource", "IMAGENET_MEAN", "IMAGENET_STD", "ImageDataset", "PHOTO_COLLECTIONS",
    "Photo", "PhotoCollection", "RawSet", "SPEC_HELP", "SPLITS", "balanced_subset", "cache_dir", "denormalize",
    "describe_builtin", "eval_transform", "load_dataset", "load_image", "pretrain_transform", "read_image",
]
