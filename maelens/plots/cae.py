"""Figures of the CAE study: the paper's Fig. 4 layout (rows of images: the originals, then each model's
whole-image reconstruction) and a per-layer curve of two encoders side by side. Functions return a matplotlib
Figure built without pyplot; inputs are plain arrays, so plots know nothing of how they were computed."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_image_rows", "plot_layer_comparison"]


def plot_image_rows(rows: Mapping[str, np.ndarray], *, title: str = "", panel_inches: float = 1.2) -> Figure:
    """One row of images per entry of ``rows`` (name -> (B, H, W, 3) RGB in [0, 1]), the name on the left."""
    names = list(rows)
    count = len(next(iter(rows.values())))
    fig = Figure(figsize=(panel_inches * count + 1.2, panel_inches * len(names) + 0.4), layout="constrained")
    axes = fig.subplots(len(names), count, squeeze=False)
    for r, name in enumerate(names):
        for c in range(count):
            ax = axes[r, c]
            ax.imshow(np.clip(rows[name][c], 0, 1))
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_layer_comparison(curves: Mapping[str, Sequence[float]], *, ylabel: str, title: str = "") -> Figure:
    """A curve per model (name -> one value per layer) against the layer index."""
    fig = Figure(figsize=(4.5, 3.2), layout="constrained")
    ax = fig.add_subplot()
    for name, values in curves.items():
        ax.plot(range(len(values)), values, marker="o", label=name)
    ax.set_xlabel("encoder layer")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return fig
