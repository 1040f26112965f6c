"""The dataset type every reader produces: images in memory (uint8 or already-normalised float)
or as files decoded on access, with labels, class names and stable image identifiers."""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset, Subset
from torchvision.transforms import v2

from ..choices import SPLITS
from ..errors import DataError
from .checks import check_inputs, check_labels, check_length, check_pixels
from .images import read_image
from .normalization import IMAGENET_MEAN, IMAGENET_STD
from .transforms import eval_transform, pretrain_geometry, pretrain_transform

TEST_FRACTION_PERCENT = 20

Images = Union[np.ndarray, torch.Tensor, list[Path]]


@dataclass
class RawSet:
    """What a reader returns for one split, before transforms.

    ``images`` is uint8 (N, H, W, C) with C in {1, 3}, or float32 (N, 3, S, S) model inputs
    (``normalized=True``), or a list of N image files.
    """

    images: Images
    labels: np.ndarray
    classes: list[str]
    ids: list[str]
    sources: list[str] = field(default_factory=list)
    normalized: bool = False

    def __len__(self) -> int:
        return len(self.images)

    def take(self, indices: Sequence[int] | np.ndarray) -> "RawSet":
        """The items at ``indices``."""
        idx = np.asarray(indices, dtype=np.int64)
        images = [self.images[i] for i in idx] if isinstance(self.images, list) else self.images[idx]
        return RawSet(images, np.asarray(self.labels)[idx], self.classes, [self.ids[i] for i in idx],
                      self.sources, self.normalized)


class ImageDataset(Dataset):
    """Images with labels: ``ds[i] -> (float32 (3, S, S) normalised with mean/std, label or -1)``.

    ``train=True`` applies the MAE pretraining augmentation, otherwise the evaluation transform.
    Attributes: ``classes``, ``labels`` (N,) int64, ``ids``, ``mean``, ``std``, ``image_size``,
    ``name`` (the ``--data`` value), ``split``, ``sources`` (where the images come from).
    """

    def __init__(self, raw: RawSet, *, image_size: int, train: bool = False,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 name: str = "", split: str = "all") -> None:
        self.raw = raw
        self.image_size = int(image_size)
        self.train = bool(train)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.name = name
        self.split = split
        self.classes = list(raw.classes)
        self.ids = [str(i) for i in raw.ids]
        self.sources = list(raw.sources)
        n = len(raw)
        where = name or "data"
        # the arrays every reader hands over, checked once more where they enter a dataset (issue 29)
        self.labels = check_labels(raw.labels, n, where, self.classes)
        check_length(self.ids, n, where, "ids")
        if not raw.normalized and not isinstance(raw.images, list):
            check_pixels(raw.images, where)
        if raw.normalized:
            check_inputs(raw.images, where, self.image_size)
            self.transform = pretrain_geometry(self.image_size) if train else v2.Identity()
        elif train:
            self.transform = pretrain_transform(self.image_size, self.mean, self.std)
        else:
            self.transform = eval_transform(self.image_size, self.mean, self.std)

    @classmethod
    def from_arrays(cls, images: np.ndarray | torch.Tensor, labels: Sequence[int] | None = None, *,
                    image_size: int, classes: Sequence[str] = (), ids: Sequence[str] | None = None,
                    train: bool = False, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                    name: str = "arrays") -> "ImageDataset":
        """A dataset over in-memory images: uint8 (N, H, W, 3) pixels or float32 (N, 3, S, S) model inputs."""
        n = len(images)
        normalized = images.dtype != np.uint8 and images.dtype != torch.uint8
        raw = RawSet(torch.as_tensor(images, dtype=torch.float32) if normalized else np.asarray(images),
                     np.full(n, -1, np.int64) if labels is None else np.asarray(labels),
                     list(classes), [str(i) for i in range(n)] if ids is None else list(ids), [name], normalized)
        return cls(raw, image_size=image_size, train=train, mean=mean, std=std, name=name)

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.pixels(index)), int(self.labels[index])

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[torch.Tensor, int]]:
        """The items at ``indices`` (a DataLoader fetches a batch this way): in-memory pixels already at the model's
        size under the evaluation transform are normalised in one batched operation, the same values as item by
        item without ~0.2 ms of per-image Python each (issue 23); anything else item by item."""
        images = self.raw.images
        if (self.train or self.raw.normalized or isinstance(images, list)
                or tuple(images.shape[1:3]) != (self.image_size, self.image_size)):
            return [self[i] for i in indices]
        from .device_batches import pixel_tensor
        from .pretrain_augment import BatchPretrainAugment

        pixels = pixel_tensor(images[np.asarray(indices, dtype=np.int64)])
        batch = BatchPretrainAugment(self.image_size, mean=self.mean, std=self.std, augment=False)(pixels)
        return [(img, int(self.labels[i])) for img, i in zip(batch, indices)]

    def pixels(self, index: int) -> torch.Tensor:
        """The stored image before transforms: uint8 (3, H, W), or the float (3, S, S) input."""
        images = self.raw.images
        if isinstance(images, list):
            arr = read_image(images[index])
        elif self.raw.normalized:
            return torch.as_tensor(images[index])
        else:
            arr = images[index]
        img = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)
        return img.expand(3, -1, -1) if img.shape[0] == 1 else img

    @property
    def storage(self) -> str:
        """How the images are held, in words (uint8 arrays, float model inputs, or files)."""
        images = self.raw.images
        if isinstance(images, list):
            return "image files, decoded on access"
        if self.raw.normalized:
            return "float32 model inputs (already normalised)"
        return f"uint8 arrays {images.shape[1]}x{images.shape[2]}x{images.shape[3]} in memory"

    def subset(self, indices: Sequence[int] | np.ndarray) -> "ImageDataset":
        """The images at ``indices``, same transforms and metadata."""
        return ImageDataset(self.raw.take(indices), image_size=self.image_size, train=self.train, mean=self.mean,
                            std=self.std, name=self.name, split=self.split)

    def class_counts(self) -> dict[str, int]:
        """Number of images per class name (``unlabelled`` for label -1)."""
        counts = Counter(self.labels.tolist())
        names = {i: c for i, c in enumerate(self.classes)}
        return {names.get(k, "unlabelled" if k < 0 else str(k)): v for k, v in sorted(counts.items())}

    def describe(self) -> dict[str, Any]:
        """A plain summary (for ``maelens data info`` and run records)."""
        return {"data": self.name, "split": self.split, "num_images": len(self), "image_size": self.image_size,
                "storage": self.storage, "num_classes": len(self.classes), "class_counts": self.class_counts(),
                "train_transform": self.train, "mean": list(self.mean), "std": list(self.std),
                "sources": self.sources}


def balanced_subset(labels: np.ndarray, limit: int | None, seed: int = 0) -> np.ndarray:
    """Indices of a seeded, class-balanced subset of ``limit`` items, in their original order.

    The items are shuffled with ``seed``, then taken round-robin over the classes (the first of
    every class, then the second, ...), so each class gets ``limit // C`` or one more where it has
    enough items. Unlabelled data (all -1) is one class: a plain seeded random subset.
    """
    n = len(labels)
    if limit is None or limit >= n:
        return np.arange(n)
    perm = np.random.default_rng(seed).permutation(n)
    lab = np.asarray(labels)[perm]
    order = np.argsort(lab, kind="stable")
    sorted_lab = lab[order]
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - np.searchsorted(sorted_lab, sorted_lab, side="left")
    pick = np.lexsort((np.arange(n), rank))[:limit]
    return np.sort(perm[pick])


def is_test_id(ids: Sequence[str]) -> np.ndarray:
    """(N,) bool: the deterministic hold-out split for data without one, about 20% of the items,
    decided by a CRC-32 of each identifier (so adding files never moves existing ones)."""
    return np.array([zlib.crc32(str(i).encode()) % 100 < TEST_FRACTION_PERCENT for i in ids], dtype=bool)


def select_classes(raw: RawSet, names: Sequence[str], where: str = "data") -> RawSet:
    """The items of the classes ``names`` (in that order: label i is ``names[i]``), e.g. the IPOL paper's
    4 Places365 classes. A name the set does not have is a DataError naming the closest ones."""
    import difflib

    index = {c: i for i, c in enumerate(raw.classes)}
    missing = [n for n in names if n not in index]
    if missing:
        near = difflib.get_close_matches(missing[0], raw.classes, n=3) or raw.classes[:5]
        raise DataError(f"{where}: no class {missing[0]!r} (closest: {', '.join(near) or 'none, unlabelled data'})")
    if len(set(names)) != len(names):
        raise DataError(f"{where}: a class is named twice in {', '.join(names)}")
    old = np.array([index[n] for n in names], dtype=np.int64)
    keep = np.flatnonzero(np.isin(raw.labels, old))
    subset = raw.take(keep)
    remap = np.full(len(raw.classes), -1, np.int64)
    remap[old] = np.arange(len(names))
    return RawSet(subset.images, remap[subset.labels], list(names), subset.ids,
                  subset.sources + [f"classes {', '.join(names)}"], subset.normalized)


def select_split(raw: RawSet, is_test: np.ndarray, split: str) -> RawSet:
    """The part of ``raw`` in ``split`` given the (N,) ``is_test`` flags."""
    if split == "all":
        return raw
    return raw.take(np.flatnonzero(is_test if split == "test" else ~is_test))

def subset_base(dataset: Dataset) -> tuple[Dataset, np.ndarray]:
    """The dataset under any nesting of :class:`~torch.utils.data.Subset` and the indices into it of
    ``dataset``'s items, in order."""
    indices = np.arange(len(dataset))
    while isinstance(dataset, Subset):
        indices = np.asarray(dataset.indices)[indices]
        dataset = dataset.dataset
    return dataset, indices


__all__ = ["ImageDataset", "RawSet", "SPLITS", "TEST_FRACTION_PERCENT", "balanced_subset", "is_test_id", "subset_base",
    "select_classes", "select_split"]
