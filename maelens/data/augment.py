"""SimCLR's data augmentation (Chen et al. 2020, sec. 3 and appendix A; IPOL sec. 6: "random cropping
followed by resize back to original resolution, random color distortions and random gaussian blurs"),
batched on torch tensors: every image of a batch draws its own parameters, and each step is one
vectorised operation over the batch, on whatever device the images are (no PIL, no per-image loop).

The steps, in SimCLR's order, on float images in [0, 1] of shape (B, 3, H, W):

1. random resized crop: area fraction in ``crop_scale``, aspect ratio log-uniform in ``crop_ratio``
   (ten tries per image, then the whole image, as torchvision), resized to ``size`` x ``size`` by
   bilinear sampling of a continuous box (torchvision rounds the box to whole pixels);
2. horizontal flip with probability 1/2 (folded into the crop's affine map);
3. colour jitter with probability ``jitter_prob``: brightness, contrast and saturation factors uniform in
   [max(0, 1 - 0.8 s), 1 + 0.8 s], hue shift uniform in [-0.2 s, 0.2 s] (s = ``jitter_strength``),
   applied in a random order per image, with torchvision's definitions of each operation;
4. grayscale with probability ``gray_prob`` (ITU-R 601 luma, as torchvision, on all three channels);
5. Gaussian blur with probability ``blur_prob``: sigma uniform in [0.1, 2], an odd kernel of about 10%
   of the side (at least 3), reflect padding.

Random numbers come from a CPU ``torch.Generator`` (the same draws on CPU and GPU); the images never
leave their device. The output keeps the dtype and lies in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..choices import SIMCLR_AUGMENTATION as _AUGMENT

#: Luma weights of torchvision's ``rgb_to_grayscale`` (ITU-R 601-2).
LUMA = (0.2989, 0.587, 0.114)
#: Tries of the crop sampler before it falls back to the whole image (torchvision's RandomResizedCrop).
CROP_TRIES = 10


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def grayscale(imgs: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB -> (..., 1, H, W) luma."""
    r, g, b = imgs.unbind(-3)
    return (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(-3)


def _per_image(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) values shaped (B, 1, 1, 1) on ``like``'s device and dtype, to scale a batch of images."""
    return values.to(like.device, like.dtype).view(-1, 1, 1, 1)


def adjust_brightness(imgs: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Multiply each image by its factor (0 gives black), clamped to [0, 1]."""
    return (imgs * _per_image(factors, imgs)).clamp(0, 1)


def adjust_contrast(imgs: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Blend each image with the mean of its grayscale (0 gives a flat grey image), clamped."""
    mean = grayscale(imgs).mean(dim=(-3, -2, -1), keepdim=True)
    f = _per_image(factors, imgs)
    return (f * imgs + (1 - f) * mean).clamp(0, 1)


def adjust_saturation(imgs: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Blend each image with its grayscale version (0 gives grayscale), clamped."""
    f = _per_image(factors, imgs)
    return (f * imgs + (1 - f) * grayscale(imgs)).clamp(0, 1)


def rgb_to_hsv(imgs: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB in [0, 1] -> HSV, each in [0, 1] (hue as a fraction of the turn)."""
    r, g, b = imgs.unbind(-3)
    value, _ = imgs.max(dim=-3)
    chroma = value - imgs.min(dim=-3).values
    grey = chroma == 0
    saturation = torch.where(value > 0, chroma / torch.where(value > 0, value, 1), 0)
    c = torch.where(grey, 1, chroma)
    # the sextant of the largest channel, red first then green on ties (as torchvision)
    hue = torch.where(value == r, ((g - b) / c) % 6,
                      torch.where(value == g, (b - r) / c + 2, (r - g) / c + 4))
    hue = torch.where(grey, 0, hue / 6)
    return torch.stack([hue, saturation, value], dim=-3)


def hsv_to_rgb(imgs: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) HSV in [0, 1] -> RGB: channel n (5, 3, 1 for R, G, B) is v - v s clamp(min(k, 4 - k), 0, 1)
    with k = (n + 6 h) mod 6."""
    h, s, v = (t.unsqueeze(-3) for t in imgs.unbind(-3))
    n = torch.tensor([5.0, 3.0, 1.0], device=imgs.device, dtype=imgs.dtype).view(3, 1, 1)
    k = (n + 6 * h) % 6
    return v - v * s * torch.minimum(k, 4 - k).clamp(0, 1)


def adjust_hue(imgs: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Rotate each image's hue by its shift (a fraction of the turn, in [-0.5, 0.5])."""
    hsv = rgb_to_hsv(imgs)
    hue = (hsv[:, 0:1] + _per_image(shifts, imgs)) % 1.0
    return hsv_to_rgb(torch.cat([hue, hsv[:, 1:]], dim=1)).clamp(0, 1)


_JITTERS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def gaussian_kernel_size(size: int) -> int:
    """SimCLR's blur kernel: about 10% of the image side, odd, at least 3."""
    return max(3, int(0.1 * size) // 2 * 2 + 1)


def gaussian_blur(imgs: torch.Tensor, sigmas: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Blur each image with its own Gaussian (separable, reflect padding): one grouped convolution per axis."""
    b, ch, hgt, wid = imgs.shape
    half = (kernel_size - 1) / 2
    x = torch.linspace(-half, half, kernel_size, device=imgs.device, dtype=imgs.dtype)
    weights = torch.exp(-0.5 * (x / sigmas.to(imgs.device, imgs.dtype).view(-1, 1)) ** 2)
    weights = (weights / weights.sum(dim=1, keepdim=True)).repeat_interleave(ch, dim=0)  # (B*C, k)
    pad = kernel_size // 2
    out = F.pad(imgs.reshape(1, b * ch, hgt, wid), (pad, pad, pad, pad), mode="reflect")
    out = F.conv2d(out, weights.view(b * ch, 1, 1, kernel_size), groups=b * ch)  # along the width
    out = F.conv2d(out, weights.view(b * ch, 1, kernel_size, 1), groups=b * ch)  # along the height
    return out.view(b, ch, hgt, wid)


def crop_boxes(n: int, scale: tuple[float, float], ratio: tuple[float, float],
               generator: torch.Generator | None = None, aspect: float = 1.0) -> torch.Tensor:
    """(n, 4) boxes (width, height, centre x, centre y) as fractions of the image's width and height: area
    fraction uniform in ``scale``, aspect ratio (width / height, in pixels) log-uniform in ``ratio``; the
    first of :data:`CROP_TRIES` draws that fits, else the whole image. ``aspect``: the image's width / height
    (a box of pixel ratio r spans fractions w / h = r / aspect)."""
    area = scale[0] + (scale[1] - scale[0]) * torch.rand(n, CROP_TRIES, generator=generator)
    log_ratio = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * torch.rand(
        n, CROP_TRIES, generator=generator)
    fraction_ratio = log_ratio.exp() / aspect
    w, h = torch.sqrt(area * fraction_ratio), torch.sqrt(area / fraction_ratio)
    fits = (w <= 1) & (h <= 1)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # the first try that fits
    found = fits.any(dim=1)
    w = torch.where(found, w.gather(1, first).squeeze(1), 1.0)
    h = torch.where(found, h.gather(1, first).squeeze(1), 1.0)
    # the box's centre, uniform over the positions that keep it inside the image
    cx = w / 2 + (1 - w) * torch.rand(n, generator=generator)
    cy = h / 2 + (1 - h) * torch.rand(n, generator=generator)
    return torch.stack([w, h, cx, cy], dim=1)


def resized_crop(imgs: torch.Tensor, boxes: torch.Tensor, flips: torch.Tensor, size: int,
                 mode: str = "bilinear") -> torch.Tensor:
    """Crop each image to its box (as :func:`crop_boxes` gives), flip it horizontally where ``flips``, resize
    to ``size`` x ``size`` by sampling the continuous box at the output's pixel centres (``mode``: bilinear,
    or bicubic, which may overshoot the input's range)."""
    w, h, cx, cy = boxes.to(imgs.device, imgs.dtype).unbind(1)
    sign = 1 - 2 * flips.to(imgs.device, imgs.dtype)
    zero = torch.zeros_like(w)
    # the affine map from output coordinates in [-1, 1] to the box in the input's [-1, 1] coordinates
    theta = torch.stack([torch.stack([w * sign, zero, 2 * cx - 1], dim=1),
                         torch.stack([zero, h, 2 * cy - 1], dim=1)], dim=1)
    grid = F.affine_grid(theta, [imgs.shape[0], imgs.shape[1], size, size], align_corners=False)
    return F.grid_sample(imgs, grid, mode=mode, padding_mode="border", align_corners=False)


@dataclass(frozen=True)
class SimCLRAugment:
    """SimCLR's augmentation of a batch (see the module doc); ``size``: the output side."""

    size: int
    crop_scale: tuple[float, float] = _AUGMENT["crop_scale"]
    crop_ratio: tuple[float, float] = _AUGMENT["crop_ratio"]
    flip_prob: float = 0.5
    jitter_strength: float = _AUGMENT["jitter_strength"]
    jitter_prob: float = _AUGMENT["jitter_prob"]
    gray_prob: float = _AUGMENT["gray_prob"]
    blur_prob: float = _AUGMENT["blur_prob"]
    blur_sigma: tuple[float, float] = (0.1, 2.0)

    @classmethod
    def from_config(cls, config: Any) -> "SimCLRAugment":
        """The augmentation a SimCLR model's config describes (its ``img_size`` and the fields named in
        :data:`~maelens.choices.SIMCLR_AUGMENTATION`): what a run of that model trains on."""
        return cls(int(config.img_size), **{name: getattr(config, name) for name in _AUGMENT})

    def __call__(self, imgs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, 3, H, W) float in [0, 1] -> (B, 3, size, size) augmented, same dtype and device, in [0, 1]."""
        if imgs.ndim != 4 or imgs.shape[1] != 3 or not imgs.is_floating_point():
            raise ValueError(f"expected float RGB images (B, 3, H, W) in [0, 1], got {imgs.dtype} "
                             f"{tuple(imgs.shape)}")
        n = imgs.shape[0]
        # 1-2. crop, flip, resize
        flips = torch.rand(n, generator=generator) < self.flip_prob
        out = resized_crop(imgs, crop_boxes(n, self.crop_scale, self.crop_ratio, generator), flips, self.size)
        # 3. colour jitter, its four operations in a random order per image
        out = self._jitter(out, generator)
        # 4. grayscale
        gray = (torch.rand(n, generator=generator) < self.gray_prob).to(out.device)
        out = torch.where(gray.view(-1, 1, 1, 1), grayscale(out).expand_as(out), out)
        # 5. Gaussian blur
        blur = torch.rand(n, generator=generator) < self.blur_prob
        sigmas = _uniform(n, *self.blur_sigma, generator)
        if blur.any():
            chosen = blur.to(out.device)
            out[chosen] = gaussian_blur(out[chosen], sigmas[blur], gaussian_kernel_size(self.size))
        return out.clamp(0, 1)

    def _jitter(self, imgs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        n, s = imgs.shape[0], self.jitter_strength
        applied = torch.rand(n, generator=generator) < self.jitter_prob
        order = torch.rand(n, len(_JITTERS), generator=generator).argsort(dim=1)
        amount = 0.8 * s
        factors = [_uniform(n, max(0.0, 1 - amount), 1 + amount, generator) for _ in range(3)]
        factors.append(_uniform(n, -0.2 * s, 0.2 * s, generator))
        out = imgs.clone()
        for position in range(len(_JITTERS)):
            for op, (adjust, values) in enumerate(zip(_JITTERS, factors)):
                chosen = applied & (order[:, position] == op)
                if chosen.any():
                    where = chosen.to(imgs.device)
                    out[where] = adjust(out[where], values[chosen])
        return out


__all__ = ["CROP_TRIES", "LUMA", "SimCLRAugment", "adjust_brightness", "adjust_contrast", "adjust_hue",
           "adjust_saturation", "crop_boxes", "gaussian_blur", "gaussian_kernel_size", "grayscale",
           "hsv_to_rgb", "resized_crop", "rgb_to_hsv"]
