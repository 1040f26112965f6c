"""Training batches that are never the bottleneck (issue 23): the images stay in memory as one uint8
tensor, a step's images are gathered with one index, moved to the training device, and augmented there
as one batched resampling (:class:`~maelens.data.pretrain_augment.BatchPretrainAugment`).

A DataLoader over an :class:`~maelens.data.ImageDataset` runs torchvision's transform image by image in
Python (about 0.3 ms per 32 x 32 image on one core, more than the ``tiny`` model's whole step per image);
here the same work is a few batched kernels. Data sets whose images are files decoded on access keep the
DataLoader (its workers help there); :func:`device_batches` says which applies.

The batches follow the sampler exactly as ``DataLoader(dataset, batch_size, sampler=..., drop_last=True)``
would (same images in the same order); the crops come from the generator given, so a run that saves that
generator's state (the trainer's mask generator) resumes with the same crops.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np
import torch
from torch.utils.data import Dataset

from .dataset import ImageDataset, subset_base
from .pretrain_augment import BatchPretrainAugment

#: Images are moved to a CUDA device once when they take at most this many bytes, else batch by batch.
DEVICE_COPY_BYTES = 2 << 30


class DeviceBatches:
    """Batches of model inputs ``(batch_size, 3, S, S)`` float32 on ``device``, in the order ``sampler`` gives
    indices into ``images``: uint8 pixels (N, H, W, C), C in {1, 3}, as the readers store them (a batch is
    turned channel-first on its own: no second copy of the data set), or float (N, 3, S, S) model inputs
    when ``pixels`` is False. ``index`` maps the sampler's indices to rows of ``images`` (a Subset's indices;
    None: the same). Incomplete last batches are dropped; ``len()`` is the number of batches."""

    def __init__(self, images: torch.Tensor, sampler: Iterable[int], batch_size: int, *,
                 transform: BatchPretrainAugment, device: torch.device | str = "cpu",
                 generator: torch.Generator | None = None, pixels: bool = True, index: torch.Tensor | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.device = torch.device(device)
        on_device = self.device.type != "cpu" and images.numel() * images.element_size() <= DEVICE_COPY_BYTES
        self.images = images.to(self.device) if on_device else images
        self.sampler = sampler
        self.batch_size = batch_size
        self.transform = transform
        self.generator = generator
        self.pixels = pixels
        self.index = index

    def __len__(self) -> int:
        return len(self.sampler) // self.batch_size  # type: ignore[arg-type]

    def batch(self, indices: torch.Tensor) -> torch.Tensor:
        """The model inputs of the images at ``indices`` (one gather, one copy to the device, one resampling)."""
        rows = indices if self.index is None else self.index[indices]
        imgs = self.images[rows.to(self.images.device)].to(self.device, non_blocking=True)
        if self.pixels:
            imgs = pixel_tensor(imgs)
        return self.transform(imgs, self.generator, pixels=self.pixels)

    def __iter__(self) -> Iterator[torch.Tensor]:
        order = torch.as_tensor(list(iter(self.sampler)), dtype=torch.long)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield self.batch(order[start:start + self.batch_size])


def stored_images(dataset: Dataset) -> tuple[ImageDataset, np.ndarray] | None:
    """The :class:`ImageDataset` under ``dataset`` (through Subsets) and the indices into it, when it keeps
    its images in memory (uint8 pixels or float model inputs); None for image files or other datasets."""
    dataset, indices = subset_base(dataset)
    if not isinstance(dataset, ImageDataset) or isinstance(dataset.raw.images, list):
        return None
    return dataset, indices


def pixel_tensor(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, C) with C in {1, 3} -> a contiguous uint8 (N, 3, H, W) tensor (grey repeated), on the
    images' device."""
    pixels = torch.as_tensor(images).permute(0, 3, 1, 2)
    return (pixels.expand(-1, 3, -1, -1) if pixels.shape[1] == 1 else pixels).contiguous()


def device_batches(dataset: Dataset, sampler: Iterable[int], batch_size: int, *,
                   device: torch.device | str = "cpu", generator: torch.Generator | None = None,
                   interpolation: str = "bicubic") -> DeviceBatches | None:
    """:class:`DeviceBatches` equivalent to a DataLoader over ``dataset`` with ``sampler``, ``batch_size`` and
    ``drop_last=True`` (MAE's crop and flip when the dataset's ``train`` is set, else its normalisation
    alone), or None where they do not apply: images kept as files (a DataLoader with workers reads those
    better), datasets other than :class:`ImageDataset` (or Subsets of one), and images stored at another
    size than the model's without augmentation (the evaluation transform resizes those)."""
    found = stored_images(dataset)
    if found is None:
        return None
    base, indices = found
    raw = base.raw
    pixels = not raw.normalized
    images = torch.as_tensor(raw.images, dtype=None if pixels else torch.float32)  # shares the readers' memory
    side = tuple(images.shape[1:3] if pixels else images.shape[2:4])
    if not base.train and side != (base.image_size, base.image_size):
        return None
    same = len(indices) == len(images) and np.array_equal(indices, np.arange(len(images)))
    transform = BatchPretrainAugment(base.image_size, mean=base.mean, std=base.std, interpolation=interpolation,
                                     augment=base.train)
    return DeviceBatches(images, sampler, batch_size, transform=transform, device=device, generator=generator,
                         pixels=pixels, index=None if same else torch.as_tensor(indices, dtype=torch.long))


__all__ = ["DEVICE_COPY_BYTES", "DeviceBatches", "device_batches", "pixel_tensor", "stored_images"]
