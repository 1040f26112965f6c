"""The input normalisation of the models: ImageNet's per-channel mean and standard deviation (what the
official MAE and the presets use) and its inverse. Data owns these constants (the models import them), and
this module needs neither torch nor PIL at import, so a preset can be read without loading either."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import torch

#: ImageNet's RGB mean and standard deviation (torchvision's values), the normalisation of every preset.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def denormalize(x: "torch.Tensor", mean: Sequence[float] = IMAGENET_MEAN,
                std: Sequence[float] = IMAGENET_STD, clamp: bool = True) -> "torch.Tensor":
    """Undo the input normalisation: (..., 3, H, W) model inputs -> pixel values, clamped to [0, 1] unless
    ``clamp=False`` (a loss target keeps the values the model was given, overshoot included)."""
    m = x.new_tensor(mean).view(3, 1, 1)
    s = x.new_tensor(std).view(3, 1, 1)
    pixels = x * s + m
    return pixels.clamp(0.0, 1.0) if clamp else pixels


__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "denormalize"]
