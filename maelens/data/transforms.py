"""Input transforms on uint8 (3, H, W) tensors, as in MAE pretraining and evaluation.

Pretraining: RandomResizedCrop with scale (0.2, 1) and bicubic interpolation, horizontal flip,
normalisation -- MAE's default augmentation ("crop, rand size" with flipping in the MAE ablation
table) and the IPOL paper's "random horizontal flips and random crops" (Sarbout & Colom, sec. 4,
experimental setup). Evaluation: resize the shorter side to the model's
input size, center crop, normalise (an image already at that size passes through unchanged apart
from the normalisation).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torchvision.transforms import v2

from .normalization import IMAGENET_MEAN, IMAGENET_STD

PRETRAIN_SCALE = (0.2, 1.0)
_BICUBIC = v2.InterpolationMode.BICUBIC

Transform = Callable[[torch.Tensor], torch.Tensor]


def _normalise(mean: Sequence[float], std: Sequence[float]) -> list[Transform]:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]


def pretrain_transform(image_size: int, mean: Sequence[float] = IMAGENET_MEAN,
                       std: Sequence[float] = IMAGENET_STD) -> Transform:
    """MAE pretraining augmentation: uint8 (3, H, W) -> normalised float32 (3, S, S)."""
    return v2.Compose([*pretrain_geometry(image_size).transforms, *_normalise(mean, std)])


def pretrain_geometry(image_size: int) -> v2.Compose:
    """The geometric part of :func:`pretrain_transform` alone (for inputs that are already normalised)."""
    return v2.Compose([
        v2.RandomResizedCrop(image_size, scale=PRETRAIN_SCALE, interpolation=_BICUBIC, antialias=True),
        v2.RandomHorizontalFlip(),
    ])


def eval_transform(image_size: int, mean: Sequence[float] = IMAGENET_MEAN,
                   std: Sequence[float] = IMAGENET_STD) -> Transform:
    """Evaluation transform: uint8 (3, H, W) -> shorter side resized to S, center crop S x S, normalised."""
    return v2.Compose([
        v2.Resize(image_size, interpolation=_BICUBIC, antialias=True),
        v2.CenterCrop(image_size),
        *_normalise(mean, std),
    ])

__all__ = ["PRETRAIN_SCALE", "eval_transform", "pretrain_geometry", "pretrain_transform"]
