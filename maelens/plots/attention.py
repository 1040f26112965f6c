"""Figures of IPOL sec. 5: influence-field maps (Fig. 9), attention properties through the decoder
layers (Fig. 10), the rank x position heat-map behind the positional-bias test, and per-head
mean attention distance / entropy. Every function returns a matplotlib Figure built without pyplot,
so no GUI backend or global state is involved (save it with :func:`maelens.io.save_figure`)."""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from ..analysis.attention_dataset import AttentionReport, InfluenceFields
from ..analysis.attention_records import DecoderLayerAttention, HeadAttention


def rank_colours(k: int) -> np.ndarray:
    """(k, 3) RGB colours, one per importance rank (0 = most important), evenly spread on 'turbo'."""
    return matplotlib.colormaps["turbo"](np.linspace(0.05, 0.95, max(k, 1)))[:k, :3]


def influence_colours(ranks: np.ndarray, influencer: np.ndarray, k: int) -> np.ndarray:
    """(N,) ranks and influencers of one image and layer -> (N, 3) colours: a most-important patch
    takes the colour of its rank, an influenced patch its influencer's colour, a black patch black."""
    palette = np.vstack([rank_colours(k), np.zeros((1, 3))])
    source_rank = np.where(influencer >= 0, ranks[np.clip(influencer, 0, None)], k)
    return palette[np.minimum(source_rank, k)]


def _patch_image(colours: np.ndarray, grid_size: tuple[int, int], size: int) -> np.ndarray:
    rows, cols = grid_size
    grid = colours.reshape(rows, cols, 3)
    return np.repeat(np.repeat(grid, size // rows, axis=0), size // cols, axis=1)


def plot_influence_map(fields: InfluenceFields, index: int = 0, image: np.ndarray | None = None,
                       alpha: float = 0.6, title: str | None = None) -> Figure:
    """Fig. 9 for image ``index`` of ``fields``: one panel per decoder layer.

    ``image`` (S, S, 3) in [0, 1] adds a first panel with the masked patches dimmed and is blended
    under the influence colours with weight ``1 - alpha``. Visible patches are outlined in white.
    """
    ranks, influencer = fields.ranks[:, index], fields.influencer[:, index]
    visible = fields.visible[index]
    k = int(visible.sum())
    n_layers = ranks.shape[0]
    rows, cols = fields.grid_size
    size = image.shape[0] if image is not None else 8 * max(rows, cols)
    panels = n_layers + (image is not None)
    fig = Figure(figsize=(2.2 * panels + 1.2, 3.0), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    if image is not None:
        dim = _patch_image(np.where(visible[:, None], 1.0, 0.35).repeat(3, 1), fields.grid_size, size)
        axes[0].imshow(np.clip(image, 0, 1) * dim)
        axes[0].set_title("masked input", fontsize=9)
    consistent = fields.consistent[:, index]
    vr, vc = np.divmod(np.flatnonzero(visible), cols)
    step = (size / rows, size / cols)
    for layer in range(n_layers):
        ax = axes[layer + (image is not None)]
        colours = _patch_image(influence_colours(ranks[layer], influencer[layer], k), fields.grid_size, size)
        if image is not None:
            colours = alpha * colours + (1 - alpha) * np.clip(image, 0, 1)
        ax.imshow(colours, interpolation="nearest")
        for r, c in zip(vr, vc):
            ax.add_patch(Rectangle((c * step[1] - 0.5, r * step[0] - 0.5), step[1], step[0],
                                       fill=False, edgecolor="white", linewidth=0.6))
        ax.set_title(f"layer {layer}" + ("" if consistent[layer] else " (inconsistent*)"), fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    # the key from colour to rank: rank r's colour marks the visible patch of rank r and every patch it influences
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import BoundaryNorm, ListedColormap

    key = ScalarMappable(norm=BoundaryNorm(np.arange(k + 2) - 0.5, k + 1),
                         cmap=ListedColormap(np.vstack([rank_colours(k), np.zeros((1, 3))])))
    ticks = sorted({0, k // 2, max(k - 1, 0)}) + [k]
    bar = fig.colorbar(key, ax=list(axes), shrink=0.9, ticks=ticks)
    bar.ax.set_yticklabels([str(t) for t in ticks[:-1]] + ["black"], fontsize=7)
    bar.set_label("importance rank of the influencer\n(0 = most important); black: none", fontsize=7)
    note = "White outline: visible patch."
    if not consistent.all():
        note += (" *inconsistent: the layer's most important patches are not exactly the visible ones "
                 "(IPOL sec. 5).")
    fig.supxlabel(note, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_layer_curves(report: AttentionReport) -> Figure:
    """Fig. 10: consistency, soft consistency, locality and black proportion vs decoder layer, with
    their 95% intervals as bands."""
    layers = report.layers
    x = np.array([row.layer for row in layers])
    fig = Figure(figsize=(5.5, 3.6), layout="constrained")
    ax = fig.subplots()
    curves = (("consistency", "consistency", "-o"), ("soft_consistency", "soft consistency", "--o"),
              ("locality", "locality", "-s"), ("black_fraction", "black / non-important", "-^"))
    for key, label, style in curves:
        y = np.array([getattr(row, key) for row in layers], dtype=float)
        ci = np.array([getattr(row, f"{key}_ci") for row in layers], dtype=float)
        line, = ax.plot(x, y, style, label=label, markersize=4)
        ax.fill_between(x, ci[:, 0], ci[:, 1], color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("decoder layer")
    ax.set_ylabel("proportion")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xticks(x)
    settings = report.settings
    pooled = "all images" if settings.get("all_images") else "consistent images"
    ax.set_title(f"{settings.get('num_images')} images, {settings.get('mask')} masking {settings.get('mask_ratio')}, "
                 f"top-{settings.get('top_n')}; locality and black on {pooled}", fontsize=9)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return fig


def plot_positional_bias(report: AttentionReport, layer: int = 0) -> Figure:
    """Rank x position count heat-map of one decoder layer, with each rank's chi-square p-value."""
    counts = np.asarray(report.positional_counts[layer], dtype=float)
    bias = report.positional_bias["layers"][layer]
    k, n = counts.shape
    fig = Figure(figsize=(8, 0.25 * k + 2), layout="constrained")
    ax, side = fig.subplots(1, 2, gridspec_kw={"width_ratios": [4, 1]}, sharey=True)
    im = ax.imshow(counts, aspect="auto", cmap="magma", interpolation="nearest")
    ax.set_xlabel("patch position (row-major)")
    ax.set_ylabel("importance rank")
    ax.set_title(f"decoder layer {layer}: where the rank-r patch sits", fontsize=9)
    fig.colorbar(im, ax=ax, label="images")
    p = np.array(bias["chi2_p"], dtype=float)
    side.barh(np.arange(k), -np.log10(np.clip(p, 1e-300, 1)), color="tab:gray")
    side.axvline(-np.log10(0.05 / max(k, 1)), color="tab:red", linewidth=0.8)
    side.set_xlabel("-log10 p (chi²)")
    return fig


def plot_head_metrics(report: AttentionReport) -> Figure:
    """Mean attention distance (pixels) and entropy (nats) of every head vs layer, per part."""
    parts: list[tuple[str, list[HeadAttention] | list[DecoderLayerAttention]]] = [("decoder", report.layers)]
    if report.encoder_layers:
        parts.insert(0, ("encoder", report.encoder_layers))
    fig = Figure(figsize=(4.2 * len(parts), 5.5), layout="constrained")
    axes = fig.subplots(2, len(parts), squeeze=False)
    for col, (part, layers) in enumerate(parts):
        for row, (key, label) in enumerate((("head_mean_attention_distance", "mean attention distance (px)"),
                                            ("head_entropy", "attention entropy (nats)"))):
            ax = axes[row, col]
            for layer in layers:
                values = np.asarray(getattr(layer, key), dtype=float)
                ax.scatter(np.full(values.shape, layer.layer), values, s=10, alpha=0.7, color="tab:blue")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel(f"{part} layer")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
    return fig

__all__ = ["influence_colours", "plot_head_metrics", "plot_influence_map", "plot_layer_curves",
    "plot_positional_bias", "rank_colours"]
