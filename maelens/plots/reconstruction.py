"""The reconstruction figure: original / masked / reconstruction / reconstruction with the visible
patches pasted back, one row per image (IPOL Fig. 4; the KTH report's Figs. 4-6 quadruplets).
Drawing only: the panels are computed by :func:`maelens.analysis.reconstruction.reconstruct`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch
from matplotlib.figure import Figure

from ..analysis.reconstruction import Reconstruction, reconstruct
from ..io import save_figure
from ..models.mae import MaskedAutoencoderViT

if TYPE_CHECKING:
    from ..train.loop import EpochEnd

COLUMNS = ("original", "masked", "reconstruction", "reconstruction + visible")


def reconstruction_figure(rec: Reconstruction, title: str | None = None, panel_inches: float = 1.5) -> Figure:
    """One row per image, the four columns of :data:`COLUMNS`; each row labelled with its masked MSE in RGB
    (the units of :func:`~maelens.analysis.reconstruction.reconstruction_error`'s ``masked_mse``), and a
    note under the panels saying what grey and the visible patches of the reconstruction are."""
    rows = rec.original.shape[0]
    fig = Figure(figsize=(len(COLUMNS) * panel_inches, rows * panel_inches + (0.4 if title else 0.1) + 0.45))
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
        label = (f"masked MSE {float(rec.rgb_mse[r]):.4f}" if rec.rgb_mse is not None
                 else f"loss {float(rec.loss[r]):.3f}")
        axes[r, 0].set_ylabel(label, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.45 / fig.get_figheight(), 1, 1))
    fig.text(0.5, 0.02, "masked MSE: RGB error on the removed patches. Grey: removed patches. The reconstruction\n"
             "column is the decoder's output everywhere; visible patches carry no loss, so their odd colours\n"
             "mean nothing (the last column pastes the originals back there).", ha="center", va="bottom", fontsize=6)
    return fig


def save_reconstruction(model: MaskedAutoencoderViT, imgs: torch.Tensor, path: str | Path, *,
                        mask_ratio: float = 0.75, masking: str = "random", noise: torch.Tensor | None = None,
                        generator: torch.Generator | None = None, title: str | None = None) -> Reconstruction:
    """Reconstruct ``imgs`` and write the figure to ``path`` atomically (format from the suffix)."""
    rec = reconstruct(model, imgs, mask_ratio=mask_ratio, masking=masking, noise=noise, generator=generator)
    save_figure(reconstruction_figure(rec, title), path)
    return rec


def epoch_reconstruction(event: "EpochEnd") -> None:
    """``train(..., on_epoch_end=epoch_reconstruction)``: the run's fixed images reconstructed after every
    epoch, written to ``recon_epoch_NNN.png`` in the run folder (nothing when the run has no figure images)."""
    if event.images is None:
        return
    save_reconstruction(event.model, event.images, event.out_dir / f"recon_epoch_{event.epoch:03d}.png",
                        mask_ratio=event.config.mask_ratio, masking=event.config.masking, noise=event.noise,
                        title=f"{event.model.config.name} - epoch {event.epoch} - train loss {event.loss:.4f}")


def reconstruction_every(every: int) -> Callable[["EpochEnd"], None]:
    """An ``on_epoch_end`` drawing :func:`epoch_reconstruction` after the first epoch, every ``every``-th and the
    last only: a figure costs about as much as a dozen steps of the ``tiny`` model (issue 23, ``make demo``)."""
    if every < 1:
        raise ValueError(f"every must be at least 1, got {every}")

    def draw(event: "EpochEnd") -> None:
        if event.epoch == 0 or (event.epoch + 1) % every == 0 or event.epoch + 1 == event.config.epochs:
            epoch_reconstruction(event)

    return draw


__all__ = ["COLUMNS", "epoch_reconstruction", "reconstruction_every", "reconstruction_figure", "save_reconstruction"]
