"""Curves over seeds (drawing only): one line per arm for the mean over seeds and a band from the lowest to the
highest seed at every epoch (IPOL Fig. 12 drawn with the spread that a verdict over seeds needs)."""

from __future__ import annotations

from typing import Mapping

import numpy as np
from matplotlib.figure import Figure


def seed_band_figure(curves: Mapping[str, np.ndarray], *, ylabel: str = "evaluation cross-entropy",
                     title: str = "") -> Figure:
    """``curves``: arm -> (seeds, epochs) values; epochs are drawn from 1. The band spans min to max over seeds."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    for arm, values in curves.items():
        v = np.atleast_2d(np.asarray(values, dtype=float))
        epochs = np.arange(1, v.shape[1] + 1)
        line, = ax.plot(epochs, v.mean(0), label=f"{arm} ({v.shape[0]} seeds)")
        ax.fill_between(epochs, v.min(0), v.max(0), color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set(xlabel="epoch", ylabel=ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return fig


__all__ = ["seed_band_figure"]
