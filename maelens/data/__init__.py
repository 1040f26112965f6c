"""Datasets: the bundled offline photographs, Debian photo and Fashion-MNIST packages, and the
formats users already have (ImageFolder, CIFAR batches, downsampled-ImageNet batches, Places365
file lists, IDX, ``.npz``). Sources and licences are
listed in ``SOURCES.md`` and :data:`DATASET_SOURCES`.

``load_dataset(spec, image_size=..., split=..., train=...)`` returns an :class:`ImageDataset`
whose items are ``(normalised float32 (3, S, S) image, label or -1)``.
"""

from __future__ import annotations

from ..models.presets import IMAGENET_MEAN, IMAGENET_STD
from .cache import cache_dir
from .dataset import SPLITS, ImageDataset, RawSet, balanced_subset
from .images import denormalize, load_image, read_image
from .load import BUILTIN, SPEC_HELP, describe_builtin, load_dataset
from .sources import DATASET_SOURCES, PHOTO_COLLECTIONS, DatasetSource, Photo, PhotoCollection
from .transforms import eval_transform, pretrain_transform

__all__ = [
    "BUILTIN", "DATASET_SOURCES", "DatasetSource", "IMAGENET_MEAN", "IMAGENET_STD", "ImageDataset", "PHOTO_COLLECTIONS",
    "Photo", "PhotoCollection", "RawSet", "SPEC_HELP", "SPLITS", "balanced_subset", "cache_dir", "denormalize",
    "describe_builtin", "eval_transform", "load_dataset", "load_image", "pretrain_transform", "read_image",
]
