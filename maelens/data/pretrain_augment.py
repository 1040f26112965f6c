"""MAE's pretraining augmentation, batched: RandomResizedCrop (area fraction 0.2-1, aspect ratio 3/4-4/3)
and a horizontal flip with probability 1/2 (MAE ``main_pretrain.py``; IPOL sec. 4: "random horizontal
flips and random crops"), then the normalisation, as ONE resampling of the whole batch on the device
where the images are (no PIL, no per-image Python).

The per-image transform of :func:`maelens.data.transforms.pretrain_transform` (torchvision) does the
same with three differences, chosen for speed and stated here:

- the box is continuous and sampled at the output's pixel centres (torchvision rounds it to whole pixels
  and clamps its resampling at the box's edges);
- bicubic sampling by ``grid_sample`` (Keys' a = -0.75, no antialiasing; torchvision's antialiased bicubic
  uses a = -0.5 and smooths when it shrinks); with the stored images at the model's input size the crop is
  always enlarged (its side is at least sqrt(0.2) of the image), where antialiasing does nothing.
  ``mode="bilinear"`` is the alternative;
- when none of the ten box draws fits, the whole image (torchvision: a centre crop of clamped ratio).

Random numbers come from a CPU ``torch.Generator``: the same seed gives the same crops on every device,
and a run that saves the generator's state resumes with the same crops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .augment import crop_boxes, resized_crop
from .normalization import IMAGENET_MEAN, IMAGENET_STD
from .transforms import PRETRAIN_SCALE

#: MAE's RandomResizedCrop aspect ratios (torchvision's default).
PRETRAIN_RATIO = (3 / 4, 4 / 3)
INTERPOLATIONS = ("bicubic", "bilinear")


@dataclass(frozen=True)
class BatchPretrainAugment:
    """Crop, flip and normalise a batch: ``(B, 3, H, W)`` uint8 pixels (or float images already
    normalised, ``pixels=False``) -> ``(B, 3, size, size)`` float32 model inputs.

    ``augment=False`` only normalises (the images must then be ``size`` x ``size``): the evaluation
    transform of images stored at the model's size.
    """

    size: int
    scale: tuple[float, float] = PRETRAIN_SCALE
    ratio: tuple[float, float] = PRETRAIN_RATIO
    flip_prob: float = 0.5
    mean: Sequence[float] = IMAGENET_MEAN
    std: Sequence[float] = IMAGENET_STD
    interpolation: str = "bicubic"
    augment: bool = True

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}")
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ValueError(f"scale must satisfy 0 < low <= high <= 1, got {self.scale}")

    def draw(self, n: int, aspect: float, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The random part alone: (n, 4) boxes (see :func:`~maelens.data.augment.crop_boxes`) and (n,) flips."""
        boxes = crop_boxes(n, self.scale, self.ratio, generator, aspect=aspect)
        flips = torch.rand(n, generator=generator) < self.flip_prob
        return boxes, flips

    def __call__(self, imgs: torch.Tensor, generator: torch.Generator | None = None, *,
                 pixels: bool = True) -> torch.Tensor:
        if imgs.ndim != 4 or imgs.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, H, W), got {tuple(imgs.shape)}")
        if not self.augment:
            if imgs.shape[-2:] != (self.size, self.size):
                raise ValueError(f"without augmentation the images must be {self.size}x{self.size}, "
                                 f"got {imgs.shape[-2]}x{imgs.shape[-1]}")
            return self.normalise(imgs) if pixels else imgs.float()
        boxes, flips = self.draw(imgs.shape[0], imgs.shape[-1] / imgs.shape[-2], generator)
        return self.apply(imgs, boxes, flips, pixels=pixels)

    def apply(self, imgs: torch.Tensor, boxes: torch.Tensor, flips: torch.Tensor, *,
              pixels: bool = True) -> torch.Tensor:
        """The deterministic part: resample every image to its box and flip, then normalise (pixels)."""
        out = resized_crop(imgs.float(), boxes, flips, self.size, mode=self.interpolation)
        if not pixels:
            return out
        # bicubic sampling overshoots at edges: back into the pixels' range before normalising
        return self.normalise(out.clamp_(0, 255) if self.interpolation == "bicubic" else out)

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8-range pixels -> (pixels / 255 - mean) / std, float32, bit for bit as torchvision's ToDtype
        (which multiplies by 1 / 255 rather than dividing) + Normalize."""
        mean = torch.tensor(self.mean, device=pixels.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=pixels.device).view(1, 3, 1, 1)
        return (pixels.float().mul(1.0 / 255) - mean) / std


__all__ = ["BatchPretrainAugment", "INTERPOLATIONS", "PRETRAIN_RATIO"]
