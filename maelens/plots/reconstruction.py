"""The reconstruction figure: original / masked / reconstruction / reconstruction with the visible
patches pasted back, one row per image (IPOL Fig. 4; the KTH report's Figs. 4-6 quadruplets).

Predictions are brought back to RGB in [0, 1]: a norm-pix model's per-patch standardised output is
un-normalised with the mean and variance of the true target patch (as MAE's visualisation demo
does), a YCbCr model's output goes through :func:`~maelens.models.losses.ycbcr_to_rgb`, and a pixel
model's output is de-normalised with the model's mean/std.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from matplotlib.figure import Figure

from ..io import save_figure
from ..models.losses import YCBCR_WEIGHTS, normalize_patches, patch_errors, ycbcr_to_rgb
from ..models.mae import MaskedAutoencoderViT
from ..models.presets import YCBCR_TARGETS

COLUMNS = ("original", "masked", "reconstruction", "reconstruction + visible")


@dataclass
class Reconstruction:
    """RGB images in [0, 1], each (B, 3, H, W): ``original``, ``masked`` (removed patches grey),
    ``reconstruction`` and ``pasted`` (visible patches of the original put back); ``mask`` (B, L)
    1 = removed; ``loss`` (B,) each image's training loss on its removed patches."""

    original: torch.Tensor
    masked: torch.Tensor
    reconstruction: torch.Tensor
    pasted: torch.Tensor
    mask: torch.Tensor
    loss: torch.Tensor


def to_rgb(model: MaskedAutoencoderViT, imgs: torch.Tensor) -> torch.Tensor:
    """Model inputs (B, 3, H, W), normalised with the model's mean/std -> RGB in [0, 1]."""
    mean = torch.tensor(model.config.norm_mean, dtype=imgs.dtype, device=imgs.device)[:, None, None]
    std = torch.tensor(model.config.norm_std, dtype=imgs.dtype, device=imgs.device)[:, None, None]
    return (imgs * std + mean).clamp(0, 1)


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


def _per_image_loss(model: MaskedAutoencoderViT, imgs: torch.Tensor, pred: torch.Tensor,
                    mask: torch.Tensor) -> torch.Tensor:
    target = model.patchify(model.target_images(imgs))
    if model.config.norm_pix_loss:
        target = normalize_patches(target)
    weights = YCBCR_WEIGHTS if model.config.loss_target == "ycbcr" else None
    return (patch_errors(pred, target, weights) * mask).sum(1) / mask.sum(1)


@torch.no_grad()
def reconstruct(model: MaskedAutoencoderViT, imgs: torch.Tensor, *, mask_ratio: float = 0.75,
                masking: str = "random", noise: torch.Tensor | None = None,
                generator: torch.Generator | None = None, fill: float = 0.5) -> Reconstruction:
    """Mask ``imgs`` (B, 3, H, W), run the MAE and return the four panels of the figure.

    ``noise`` (B, L) fixes the masks exactly; otherwise ``masking`` is sampled with ``generator``.
    """
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
    loss = _per_image_loss(model, imgs.float(), pred.float(), mask)
    return Reconstruction(original=original.cpu(), masked=masked.cpu(), reconstruction=recon.cpu(),
                          pasted=pasted.cpu(), mask=mask.cpu(), loss=loss.cpu())


def reconstruction_figure(rec: Reconstruction, title: str | None = None, panel_inches: float = 1.5) -> Figure:
    """One row per image, the four columns of :data:`COLUMNS`; each row labelled with its loss."""
    rows = rec.original.shape[0]
    fig = Figure(figsize=(len(COLUMNS) * panel_inches, rows * panel_inches + (0.4 if title else 0.1)))
    axes = fig.subplots(rows, len(COLUMNS), squeeze=False)
    ratio = float(rec.mask.float().mean())
    panels = (rec.original, rec.masked, rec.reconstruction, rec.pasted)
    for r in range(rows):
        for c, images in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(images[r].permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(COLUMNS[c] if c != 1 else f"masked ({ratio:.0%})", fontsize=8)
        axes[r, 0].set_ylabel(f"loss {float(rec.loss[r]):.3f}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def save_reconstruction(model: MaskedAutoencoderViT, imgs: torch.Tensor, path: str | Path, *,
                        mask_ratio: float = 0.75, masking: str = "random", noise: torch.Tensor | None = None,
                        generator: torch.Generator | None = None, title: str | None = None) -> Reconstruction:
    """Reconstruct ``imgs`` and write the figure to ``path`` atomically (format from the suffix)."""
    rec = reconstruct(model, imgs, mask_ratio=mask_ratio, masking=masking, noise=noise, generator=generator)
    save_figure(reconstruction_figure(rec, title), path)
    return rec
