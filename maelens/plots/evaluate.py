"""Figures of the representation evaluation: 2-D maps coloured by class (IPOL Figs. 13-14) and the
similarity-search grid (IPOL Fig. 11)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.figure import Figure


def _class_names(labels: np.ndarray, classes: Sequence[str] | None) -> dict[int, str]:
    known = classes if classes is not None else []
    return {int(c): (known[c] if 0 <= c < len(known) else str(c)) for c in np.unique(labels)}


def class_colours(n: int) -> np.ndarray:
    """(n, 4) RGBA colours, one per class, as distinct as possible: tab10 up to 10 classes; beyond, tab20's
    ten strong shades first, then its ten light ones, then hues spread evenly (never 13 pale colours)."""
    from matplotlib import colormaps

    if n <= 10:
        return np.asarray(colormaps["tab10"].colors[:n] if n else np.zeros((0, 3)), dtype=float)
    tab20 = np.asarray(colormaps["tab20"].colors, dtype=float)
    ordered = np.vstack([tab20[0::2], tab20[1::2]])
    if n <= 20:
        return ordered[:n]
    return np.asarray(colormaps["hsv"](np.linspace(0, 1, n, endpoint=False))[:, :3], dtype=float)


def plot_map(coords: np.ndarray, labels: np.ndarray, *, test: np.ndarray | None = None,
             classes: Sequence[str] | None = None, title: str = "", ax=None) -> Figure:
    """Scatter of a 2-D map ``coords`` (N, 2) coloured by class ``labels`` (N,); held-out points
    (``test`` (N,) bool) drawn with black edges (IPOL Figs. 13-14); drawn on ``ax`` when given."""
    if ax is None:
        ax = Figure(figsize=(6, 5.5)).subplots()
    fig = ax.figure
    test = np.zeros(len(coords), bool) if test is None else np.asarray(test, bool)
    names = _class_names(labels, classes)
    colours = class_colours(len(names))
    size = float(np.clip(4000 / max(len(coords), 1), 2, 30))
    for i, (label, name) in enumerate(names.items()):
        sel = labels == label
        colour = colours[i]
        ax.scatter(coords[sel & ~test, 0], coords[sel & ~test, 1], s=size, color=colour, alpha=0.85,
                   linewidths=0, label=name)
        if (sel & test).any():
            ax.scatter(coords[sel & test, 0], coords[sel & test, 1], s=size * 1.5, color=colour, alpha=0.9,
                       edgecolors="black", linewidths=0.4)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    if len(names) <= 20:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False,
                  markerscale=float(np.sqrt(30 / size)),
                  title=("class" if classes is not None else "class index") + (" (edged: test)" if test.any() else ""),
                  title_fontsize=7)
    return fig


def plot_similarity_grid(queries: np.ndarray, neighbours: np.ndarray, scores: np.ndarray, *,
                         row_titles: Sequence[str] | None = None, neighbour_titles: np.ndarray | None = None) -> Figure:
    """Grid with one row per query: the query image, then its k most similar images with their cosine
    score (IPOL Fig. 11). ``queries`` (Q, H, W, 3) and ``neighbours`` (Q, k, H, W, 3) RGB in [0, 1];
    ``scores`` (Q, k); ``neighbour_titles`` (Q, k) optional extra caption (e.g. the image id)."""
    q, k = scores.shape
    fig = Figure(figsize=(1.6 * (k + 1), 2.1 * q))
    axes = fig.subplots(q, k + 1, squeeze=False)
    for r in range(q):
        axes[r, 0].imshow(np.clip(queries[r], 0, 1))
        axes[r, 0].set_title(row_titles[r] if row_titles is not None else "query", fontsize=9)
        for c in range(k):
            axes[r, c + 1].imshow(np.clip(neighbours[r, c], 0, 1))
            # the score under the image, legible; an image id (e.g. photo/x360y220s120) above it, one part a line
            axes[r, c + 1].set_xlabel(f"cos {scores[r, c]:.3f}", fontsize=9, labelpad=2)
            if neighbour_titles is not None:
                axes[r, c + 1].set_title("\n".join(str(neighbour_titles[r, c]).split("/")), fontsize=6.5)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
        for side in ("top", "bottom", "left", "right"):
            axes[r, 0].spines[side].set_color("red")
            axes[r, 0].spines[side].set_linewidth(2)
    fig.tight_layout()
    return fig

__all__ = ["class_colours", "plot_map", "plot_similarity_grid"]
