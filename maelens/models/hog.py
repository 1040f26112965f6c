"""Histograms of oriented gradients as a masked-image-modelling target (MaskFeat, Wei et al. 2022; the MIM
seminar, ``shared/papers/003_...``: "use features of masked patches (i.e. HOG) as a target"), in torch, batched,
without gradients.

The histogram of one cell follows Dalal & Triggs as scikit-image's ``hog`` computes it, so that the two can be
compared cell by cell (``tests/test_hog.py``):

- gradients by centred differences, ``g_row[i] = x[i+1] - x[i-1]`` (zero on the first and last row; columns
  likewise);
- magnitude ``hypot(g_row, g_col)``, unsigned orientation ``atan2(g_row, g_col)`` in degrees modulo 180;
- bin ``b`` collects the pixels whose orientation lies in ``[180 b / n, 180 (b + 1) / n)`` (hard assignment,
  no interpolation), weighted by their magnitude; the sum is divided by the cell's area (scikit-image's mean).

MaskFeat's choices on top of that: each colour channel has its own histograms (scikit-image instead keeps,
per pixel, the channel of largest gradient), and the histograms of one patch (its cells x bins, per channel)
are L2-normalised together ("normalised within each patch"). The per-channel normalisation makes the target
invariant to a per-channel affine change of intensities, so it is the same on the model's normalised inputs
as on [0, 1] pixels (up to ``eps``): :func:`hog_targets` takes the model's inputs as they are.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError


def channel_gradients(imgs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centred differences (B, C, H, W) -> (g_row, g_col), zero on the border rows / columns (as scikit-image)."""
    g_row = torch.zeros_like(imgs)
    g_col = torch.zeros_like(imgs)
    g_row[..., 1:-1, :] = imgs[..., 2:, :] - imgs[..., :-2, :]
    g_col[..., :, 1:-1] = imgs[..., :, 2:] - imgs[..., :, :-2]
    return g_row, g_col


@torch.no_grad()
def hog_histograms(imgs: torch.Tensor, cell: int, bins: int = 9) -> torch.Tensor:
    """(B, C, H, W) images -> (B, C, H // cell, W // cell, bins) magnitude-weighted orientation histograms of
    every cell and channel, each the mean over the cell's pixels (scikit-image's ``hog`` before block
    normalisation). ``H`` and ``W`` must be multiples of ``cell``."""
    if imgs.ndim != 4:
        raise ConfigError(f"images must be (B, C, H, W), got shape {tuple(imgs.shape)}")
    b, c, h, w = imgs.shape
    if cell < 1 or h % cell or w % cell:
        raise ConfigError(f"cell={cell} must divide the image sides {h}x{w}")
    if bins < 2:
        raise ConfigError(f"bins must be >= 2, got {bins}")
    # gradients, magnitude and unsigned orientation of every pixel
    g_row, g_col = channel_gradients(imgs)
    magnitude = torch.hypot(g_row, g_col)
    orientation = torch.rad2deg(torch.atan2(g_row, g_col)) % 180.0
    # hard assignment to [180 b / n, 180 (b + 1) / n)
    index = torch.div(orientation, 180.0 / bins, rounding_mode="floor").long().clamp_(0, bins - 1)
    votes = torch.zeros(b, c, h, w, bins, dtype=imgs.dtype, device=imgs.device)
    votes.scatter_(-1, index.unsqueeze(-1), magnitude.unsqueeze(-1))
    # the mean of the votes over each cell's pixels
    votes = votes.reshape(b, c, h // cell, cell, w // cell, cell, bins)
    return votes.sum(dim=(3, 5)) / (cell * cell)


@torch.no_grad()
def hog_targets(imgs: torch.Tensor, patch_size: int, cell: int, bins: int = 9, eps: float = 1e-6) -> torch.Tensor:
    """MaskFeat's HOG target of every patch: (B, C, H, W) -> (B, L, C * (patch_size // cell)^2 * bins), patches
    in the row-major order of MAE's ``patchify``; within a patch the values are ordered (channel, cell row,
    cell column, bin), and each channel's cells x bins are L2-normalised (``v / sqrt(|v|^2 + eps^2)``)."""
    if patch_size % cell:
        raise ConfigError(f"cell={cell} must divide patch_size={patch_size}")
    hist = hog_histograms(imgs.float(), cell, bins)
    b, c, hc, wc, _ = hist.shape
    k = patch_size // cell  # cells per patch side
    # (B, C, h, k, w, k, bins) -> (B, h, w, C, k, k, bins): one row per patch, channel outermost
    hist = hist.reshape(b, c, hc // k, k, wc // k, k, bins).permute(0, 2, 4, 1, 3, 5, 6)
    per_channel = hist.reshape(b, (hc // k) * (wc // k), c, k * k * bins)
    norm = torch.sqrt((per_channel ** 2).sum(-1, keepdim=True) + eps ** 2)
    return (per_channel / norm).flatten(2)


__all__ = ["channel_gradients", "hog_histograms", "hog_targets"]
