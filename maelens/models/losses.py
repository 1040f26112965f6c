"""Reconstruction targets and losses: pixel MSE, per-patch normalised pixels (MAE), and the IPOL
paper's YCbCr weighted MSE (sec. 6 "Pre-training": MSE_w = 1.20 dY^2 + 0.90 dCb^2 + 0.90 dCr^2)."""

from __future__ import annotations

import torch

# ITU-R BT.601 for RGB in [0, 1], as written in the IPOL paper (sec. 6).
YCBCR_MATRIX = torch.tensor([
    [65.481, 128.553, 24.966],
    [-37.797, -74.203, 112.0],
    [112.0, -93.786, -18.214],
]) / 255.0
YCBCR_OFFSET = torch.tensor([16.0, 128.0, 128.0]) / 255.0
YCBCR_WEIGHTS = (1.20, 0.90, 0.90)


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB in [0, 1] -> YCbCr with the paper's matrix."""
    m = YCBCR_MATRIX.to(rgb)
    return torch.einsum("ij,...jhw->...ihw", m, rgb) + YCBCR_OFFSET.to(rgb)[:, None, None]


def ycbcr_to_rgb(ycbcr: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr`."""
    inv = torch.linalg.inv(YCBCR_MATRIX.double()).to(ycbcr)
    return torch.einsum("ij,...jhw->...ihw", inv, ycbcr - YCBCR_OFFSET.to(ycbcr)[:, None, None])


def normalize_patches(target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """MAE's norm-pix target: each patch (last dim) standardised by its own mean and variance."""
    mean = target.mean(dim=-1, keepdim=True)
    var = target.var(dim=-1, keepdim=True)
    return (target - mean) / (var + eps) ** 0.5


def patch_errors(pred: torch.Tensor, target: torch.Tensor,
                 channel_weights: tuple[float, ...] | None = None) -> torch.Tensor:
    """(B, L) mean squared error of every patch; (B, L, p*p*C) inputs, channel innermost.

    With ``channel_weights`` the squared error of channel c is multiplied by its weight and summed
    over channels, as in the paper's MSE_w.
    """
    err = (pred - target) ** 2
    if channel_weights is not None:
        w = torch.tensor(channel_weights, dtype=err.dtype, device=err.device)
        err = (err.unflatten(-1, (-1, len(channel_weights))) * w).sum(-1)
    return err.mean(dim=-1)


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of (B, L) per-patch ``values`` over the removed patches (``mask`` (B, L), 1 = removed): over
    all of them (``dim=None``, MAE's loss) or per image (``dim=1``, (B,))."""
    if dim is None:
        return (values * mask).sum() / mask.sum()
    return (values * mask).sum(dim) / mask.sum(dim)


__all__ = ["YCBCR_MATRIX", "YCBCR_OFFSET", "YCBCR_WEIGHTS", "masked_mean", "normalize_patches",
    "patch_errors", "rgb_to_ycbcr", "ycbcr_to_rgb"]
