"""Attention-rollout maps drawn over the image: the CLS token's map and a chosen patch's map
(Abnar & Zuidema 2020). Returns a matplotlib Figure built without pyplot."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

__all__ = ["upsample_map", "plot_rollout"]


def upsample_map(grid_map: np.ndarray, size: int) -> np.ndarray:
    """(h, w) patch map -> (size, size) by repeating each patch's value over its pixels, scaled to [0, 1]."""
    rows, cols = grid_map.shape
    up = np.repeat(np.repeat(grid_map, -(-size // rows), axis=0), -(-size // cols), axis=1)[:size, :size]
    low, high = float(up.min()), float(up.max())
    return (up - low) / (high - low) if high > low else np.zeros_like(up)


def plot_rollout(image: np.ndarray, cls_map: np.ndarray, patch_map: np.ndarray | None = None,
                 patch: tuple[int, int] | None = None, *, alpha: float = 0.55, title: str = "") -> Figure:
    """Panels: the image (S, S, 3) in [0, 1], the CLS rollout map over it, and (when given) the rollout map
    of patch ``patch`` = (row, col) counted from the top left, outlined in cyan and named so in its title.
    Maps are min-max scaled per panel; the colour bar says so."""
    panels = 2 + (patch_map is not None)
    fig = Figure(figsize=(2.6 * panels, 2.9), layout="constrained")
    axes = fig.subplots(1, panels)
    size = image.shape[0]
    axes[0].imshow(np.clip(image, 0, 1))
    axes[0].set_title("image", fontsize=9)
    named = f"patch (row {patch[0]}, col {patch[1]})" if patch is not None else "patch"
    maps = [("CLS token", cls_map)] + ([(named, patch_map)] if patch_map is not None else [])
    overlay = None
    for ax, (name, grid_map) in zip(axes[1:], maps):
        ax.imshow(np.clip(image, 0, 1))
        overlay = ax.imshow(upsample_map(grid_map, size), cmap="jet", alpha=alpha, vmin=0, vmax=1)
        ax.set_title(f"rollout: {name}", fontsize=9)
    if overlay is not None:
        bar = fig.colorbar(overlay, ax=list(axes[1:]), shrink=0.8, ticks=[0, 0.5, 1])
        bar.set_label("rollout weight, per map:\n0 = its lowest patch, 1 = its highest", fontsize=7)
        bar.ax.tick_params(labelsize=7)
    if patch_map is not None and patch is not None:
        rows, cols = patch_map.shape
        h, w = size / rows, size / cols
        axes[2].add_patch(Rectangle((patch[1] * w - 0.5, patch[0] * h - 0.5), w, h, fill=False, edgecolor="cyan",
                                    linewidth=1.5))
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
