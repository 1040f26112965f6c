"""Figures of the layer analyses of issue 14: the CKA heat-map, accuracy against depth for the
layer-wise probes, and the token-norm statistics (histograms, outlier share by layer and position).
Every function returns a matplotlib Figure built without pyplot (save it with
:func:`maelens.io.save_figure`); the inputs are plain arrays and lists, so plots know nothing of how
they were computed."""

from __future__ import annotations

from typing import Any, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = ["plot_cka", "plot_layer_probes", "plot_token_stats"]


def plot_cka(matrix: np.ndarray, names_a: Sequence[str], names_b: Sequence[str], *, title: str = "",
             label_a: str = "layer", label_b: str = "layer") -> Figure:
    """Heat-map of a CKA matrix (rows ``names_a``, columns ``names_b``) on [0, 1], values written in the
    cells when there are few."""
    rows, cols = matrix.shape
    size = max(3.5, 0.45 * max(rows, cols) + 1.5)
    fig = Figure(figsize=(size + 1.0, size), layout="constrained")
    ax = fig.add_subplot()
    # the scale spans the values measured (rounded out to 0.05): CKA near 1 everywhere must still show its
    # structure, not one flat colour
    finite = matrix[np.isfinite(matrix)]
    low = float(np.floor(finite.min() * 20) / 20) if finite.size else 0.0
    low = min(low, 0.95)
    image = ax.imshow(matrix, vmin=low, vmax=1.0, cmap="magma", origin="lower")
    ax.set_xticks(range(cols), [str(n) for n in names_b], rotation=90, fontsize=7)
    ax.set_yticks(range(rows), [str(n) for n in names_a], fontsize=7)
    ax.set_xlabel(label_b)
    ax.set_ylabel(label_a)
    if rows * cols <= 400:
        for i in range(rows):
            for j in range(cols):
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if matrix[i, j] < low + 0.6 * (1 - low) else "black")
    fig.colorbar(image, ax=ax, label=f"CKA (scale {low:.2f} to 1)", shrink=0.8)
    ax.set_title(title, fontsize=10)
    return fig


def plot_layer_probes(rows: Sequence[dict[str, Any]], *, title: str = "") -> Figure:
    """Accuracy (with its 95% interval) against block depth, one panel per method and one line per
    pooling and norm setting; ``rows`` as :class:`~maelens.analysis.layer_probes.LayerProbeReport` holds."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig = Figure(figsize=(4.2 * len(methods), 3.4), layout="constrained")
    axes = fig.subplots(1, len(methods), squeeze=False)[0]
    for ax, method in zip(axes, methods):
        mine = [r for r in rows if r["method"] == method]
        for pool, norm in dict.fromkeys((r["pool"], r["norm"]) for r in mine):
            line = sorted((r for r in mine if r["pool"] == pool and r["norm"] == norm), key=lambda r: r["depth"])
            depth = np.array([r["depth"] for r in line])
            acc = np.array([r["accuracy"] for r in line]) * 100
            low = np.array([r["ci_low"] for r in line]) * 100
            high = np.array([r["ci_high"] for r in line]) * 100
            (handle,) = ax.plot(depth, acc, marker="o", ms=3, ls="-" if norm else "--",
                                label=f"{pool}{' + norm' if norm else ''}")
            ax.fill_between(depth, low, high, color=handle.get_color(), alpha=0.12, linewidth=0)
        ax.set_title(method, fontsize=10)
        ax.set_xlabel("encoder block")
        ax.set_ylabel("accuracy (%)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_token_stats(layers: Sequence[dict[str, Any]], hist_counts: np.ndarray, hist_edges: np.ndarray,
                     position_share: np.ndarray, *, title: str = "") -> Figure:
    """Three panels: the patch-token norm histogram of each layer (log counts, threshold marked), median
    and outlier share by layer, and the outlier share per patch position of the layer with the most
    outliers."""
    fig = Figure(figsize=(13, 3.6), layout="constrained")
    ax_hist, ax_layer, ax_pos = fig.subplots(1, 3)
    cmap = matplotlib.colormaps["viridis"]
    for i, row in enumerate(layers):
        colour = cmap(i / max(len(layers) - 1, 1))
        centres = (hist_edges[i][1:] + hist_edges[i][:-1]) / 2
        # empty bins are left out (a log axis has no 0), not drawn as a floor
        counts = np.where(hist_counts[i] > 0, hist_counts[i], np.nan).astype(float)
        ax_hist.plot(centres, counts, color=colour, lw=1, marker=".", ms=2, label=row["layer"])
        ax_hist.axvline(row["threshold"], color=colour, lw=0.6, ls=":")
    ax_hist.set_yscale("log")
    ax_hist.set_xlabel("token norm")
    ax_hist.set_ylabel("patch tokens")
    ax_hist.set_title("norm histograms (dotted: thresholds)", fontsize=9)
    if len(layers) <= 12:
        ax_hist.legend(fontsize=6, ncol=2)
    x = np.arange(len(layers))
    ax_layer.set_ylabel("median norm", color="tab:blue")
    ax_layer.set_xticks(x, [r["layer"] for r in layers], rotation=90, fontsize=7)
    twin = ax_layer.twinx()
    # one line per part: the encoder's last block and the decoder's first are not neighbours
    parts = [str(r["layer"]).split(".")[0] for r in layers]
    for part in dict.fromkeys(parts):
        idx = [i for i, p in enumerate(parts) if p == part]
        ax_layer.plot(x[idx], [layers[i]["median"] for i in idx], marker="o", ms=3, color="tab:blue")
        twin.plot(x[idx], [100 * layers[i]["outlier_share"] for i in idx], marker="s", ms=3, color="tab:red")
        if idx[0] > 0:
            ax_layer.axvline(idx[0] - 0.5, color="0.6", lw=0.8, ls="--")
    twin.set_ylabel("outlier tokens (%)", color="tab:red")
    ax_layer.set_title("by layer", fontsize=9)
    worst = int(np.argmax([r["outlier_share"] for r in layers]))
    image = ax_pos.imshow(100 * position_share[worst], cmap="Reds", vmin=0)
    ax_pos.set_title(f"outlier share by position, {layers[worst]['layer']}", fontsize=9)
    ax_pos.set_xticks([])
    ax_pos.set_yticks([])
    fig.colorbar(image, ax=ax_pos, label="% of images", shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
