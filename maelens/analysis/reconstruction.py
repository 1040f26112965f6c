"""Reconstructions (IPOL Fig. 4) and their quality on a dataset: the four panels of the figure
(:func:`reconstruct`), and the RGB error on the removed patches next to a baseline that fills every
removed patch with the image's mean visible colour (:func:`reconstruction_error`).

Predictions are brought back to RGB in [0, 1]: a norm-pix model's per-patch standardised output is
un-normalised with the mean and variance of the true target patch (as MAE's visualisation demo
does), a YCbCr model's output goes through :func:`~maelens.models.losses.ycbcr_to_rgb`, and a pixel
model's output is de-normalised with the model's mean/std.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..data.images import denormalize
from ..models.losses import masked_mean, ycbcr_to_rgb
from ..models.mae import MaskedAutoencoderViT
from ..models.presets import YCBCR_TARGETS


@dataclass
class Reconstruction:
    """RGB images in [0, 1], each (B, 3, H, W): ``original``, ``masked`` (removed patches grey),
    ``reconstruction`` and ``pasted`` (visible patches of the original put back); ``mask`` (B, L)
    1 = removed; ``loss`` (B,) each image's training loss on its removed patches (in the model's target
    space: normalised pixels, YCbCr ...); ``rgb_mse`` (B,) its mean squared error per pixel and channel on
    the removed patches in RGB [0, 1], the units of :func:`reconstruction_error` (``masked_mse``)."""

    original: torch.Tensor
    masked: torch.Tensor
    reconstruction: torch.Tensor
    pasted: torch.Tensor
    mask: torch.Tensor
    loss: torch.Tensor
    rgb_mse: torch.Tensor | None = None


def to_rgb(model: MaskedAutoencoderViT, imgs: torch.Tensor) -> torch.Tensor:
    """Model inputs (B, 3, H, W), normalised with the model's mean/std -> RGB in [0, 1]."""
    return denormalize(imgs, model.config.norm_mean, model.config.norm_std)


def predictions_to_rgb(model: MaskedAutoencoderViT, imgs: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """Decoder output (B, L, p*p*3) in the model's target space -> RGB images (B, 3, H, W) in [0, 1]."""
    pred = pred.float()
    if model.config.norm_pix_loss:
        target = model.patchify(model.target_images(imgs))
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        pred = pred * (var + 1e-6) ** 0.5 + mean
    images = model.unpatchify(pred)
    if model.config.loss_target in YCBCR_TARGETS:
        return ycbcr_to_rgb(images).clamp(0, 1)
    return to_rgb(model, images)


@torch.no_grad()
def reconstruct(model: MaskedAutoencoderViT, imgs: torch.Tensor, *, mask_ratio: float = 0.75,
                masking: str = "random", noise: torch.Tensor | None = None,
                generator: torch.Generator | None = None, fill: float = 0.5) -> Reconstruction:
    """Mask ``imgs`` (B, 3, H, W), run the MAE and return the four panels of the figure.

    ``noise`` (B, L) fixes the masks exactly; otherwise ``masking`` is sampled with ``generator``.
    """
    from ..checkpoint.objects import as_model

    model = as_model(model)
    was_training = model.training
    model.eval()
    try:
        loss_all, pred, mask = model(imgs, mask_ratio, noise, masking=masking, generator=generator)
    finally:
        model.train(was_training)
    del loss_all
    p = model.config.patch_size
    pixel_mask = model.unpatchify(mask.unsqueeze(-1).expand(-1, -1, p * p * model.config.in_chans).to(imgs.dtype))
    original = to_rgb(model, imgs.float())
    recon = predictions_to_rgb(model, imgs.float(), pred)
    masked = original * (1 - pixel_mask) + fill * pixel_mask
    pasted = original * (1 - pixel_mask) + recon * pixel_mask
    loss = masked_mean(model.patch_losses(imgs, pred), mask, dim=1)
    # RGB error on the removed patches, per pixel and channel, as reconstruction_error measures it
    rgb_mse = masked_mean(((model.patchify(recon) - model.patchify(original)) ** 2).mean(-1), mask, dim=1)
    return Reconstruction(original=original.cpu(), masked=masked.cpu(), reconstruction=recon.cpu(),
                          pasted=pasted.cpu(), mask=mask.cpu(), loss=loss.cpu(), rgb_mse=rgb_mse.cpu())


@dataclass
class ReconstructionError:
    """Mean squared error per pixel and channel (RGB in [0, 1]) over ``patches`` removed patches;
    ``model_per_image`` and ``baseline_per_image`` (N,) are each image's own MSE over its removed patches
    (for intervals over images)."""

    model_mse: float
    baseline_mse: float
    patches: int
    model_per_image: np.ndarray | None = field(default=None, compare=False)
    baseline_per_image: np.ndarray | None = field(default=None, compare=False)


def mean_colour_fill_error(patches: torch.Tensor, removed: torch.Tensor) -> torch.Tensor:
    """(B, L) squared error of filling each patch of ``patches`` (B, L, p*p*3; channel innermost) with
    its image's mean colour over the visible patches (``removed`` (B, L), 1 = removed)."""
    pixels = patches.unflatten(-1, (-1, 3))
    visible = (1 - removed)[:, :, None, None]
    colour = (pixels * visible).sum((1, 2)) / (visible.sum((1, 2)) * pixels.shape[2])
    return ((pixels - colour[:, None, None, :]) ** 2).mean((-1, -2))


@torch.no_grad()
def reconstruction_error(model: MaskedAutoencoderViT, dataset: Dataset, *, masking: str = "random",
                         mask_ratio: float = 0.75, seed: int = 0, batch_size: int = 256,
                         quiet: bool = True) -> ReconstructionError:
    """RGB MSE on removed patches of the model and of the mean-colour baseline, same seeded masks.

    Errors are measured in RGB whatever the model's target (pixels, norm-pix, YCbCr), so models
    trained with different losses compare in the same units.
    """
    from ..checkpoint.objects import as_model

    model = as_model(model)
    device = next(model.parameters()).device
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    total = baseline = count = 0.0
    per_model, per_base = [], []
    for imgs, _ in tqdm(DataLoader(dataset, batch_size=batch_size), desc="reconstruction", disable=quiet):
        imgs = imgs.to(device)
        _, pred, removed = model(imgs, mask_ratio, masking=masking, generator=generator)
        target = model.patchify(to_rgb(model, imgs))
        pred = model.patchify(predictions_to_rgb(model, imgs, pred))
        model_err = ((pred - target) ** 2).mean(-1) * removed
        base_err = mean_colour_fill_error(target, removed) * removed
        per_model.append((model_err.sum(1) / removed.sum(1)).cpu().double().numpy())
        per_base.append((base_err.sum(1) / removed.sum(1)).cpu().double().numpy())
        total += float(model_err.sum())
        baseline += float(base_err.sum())
        count += float(removed.sum())
    return ReconstructionError(model_mse=total / count, baseline_mse=baseline / count, patches=int(count),
                               model_per_image=np.concatenate(per_model), baseline_per_image=np.concatenate(per_base))

__all__ = ["Reconstruction", "ReconstructionError", "mean_colour_fill_error", "predictions_to_rgb", "reconstruct",
    "reconstruction_error", "to_rgb"]
