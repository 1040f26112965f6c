"""Figures of ``maelens compare``: one metric against the compared models (their training epoch when every
model has one, else their order), with each value's 95% interval. Plain rows in, a Figure out."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = ["plot_metric"]


def plot_metric(rows: Sequence[dict[str, Any]], metric: str, *, title: str = "") -> Figure:
    """``rows`` (dicts with model, epoch, value, ci_low, ci_high, note) as a line against the epoch, or as
    points against the model labels when an epoch is missing; rows without a value are marked n/a."""
    by_epoch = all(r.get("epoch") is not None and r["epoch"] == r["epoch"] for r in rows) and len({r["epoch"] for r in rows}) == len(rows)
    if by_epoch:
        rows = sorted(rows, key=lambda r: r["epoch"])  # the line joins the epochs in order
    x = np.array([r["epoch"] for r in rows], dtype=float) if by_epoch else np.arange(len(rows), dtype=float)
    value, low, high = (np.array([np.nan if r[k] is None else r[k] for r in rows], dtype=float)
                        for k in ("value", "ci_low", "ci_high"))
    width = 4.8 if by_epoch else max(4.8, 0.55 * len(rows) + 2.0)
    fig = Figure(figsize=(width, 3.4), layout="constrained")
    ax = fig.add_subplot()
    known = np.isfinite(value)
    ax.errorbar(x[known], value[known], yerr=[value[known] - low[known], high[known] - value[known]], fmt="o-"
                if by_epoch else "o", ms=4, capsize=3, lw=1.2, color="C0", label="value, 95% interval")
    if not known.any():
        ax.set_ylim(0, 1)
    ax.set_xlim(x.min() - 0.5, x.max() + 0.5)
    for xi in x[~known]:
        ax.annotate("n/a", (xi, 0.5), xycoords=("data", "axes fraction"), ha="center", color="0.4", fontsize=8)
    if by_epoch:
        ax.set_xlabel("training epoch (counted from 0, as log.csv)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        ax.set_xticks(x, [str(r["model"]) for r in rows], rotation=30 if len(rows) > 3 else 0, ha="right"
                      if len(rows) > 3 else "center", fontsize=8)
        ax.set_xlabel("model")
    ax.set_ylabel(metric.replace("_", " "))
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    return fig
