"""Reconstruction quality on a dataset (IPOL Fig. 4 made quantitative): RGB error on the removed
patches, next to a baseline that fills every removed patch with the image's mean visible colour."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..models.mae import MaskedAutoencoderViT
from ..plots.reconstruction import predictions_to_rgb, to_rgb


@dataclass
class ReconstructionError:
    """Mean squared error per pixel and channel (RGB in [0, 1]) over ``patches`` removed patches."""

    model_mse: float
    baseline_mse: float
    patches: int


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
    device = next(model.parameters()).device
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    total = baseline = count = 0.0
    for imgs, _ in tqdm(DataLoader(dataset, batch_size=batch_size), desc="reconstruction", disable=quiet):
        imgs = imgs.to(device)
        _, pred, removed = model(imgs, mask_ratio, masking=masking, generator=generator)
        target = model.patchify(to_rgb(model, imgs))
        pred = model.patchify(predictions_to_rgb(model, imgs, pred))
        total += float((((pred - target) ** 2).mean(-1) * removed).sum())
        baseline += float((mean_colour_fill_error(target, removed) * removed).sum())
        count += float(removed.sum())
    return ReconstructionError(model_mse=total / count, baseline_mse=baseline / count, patches=int(count))
