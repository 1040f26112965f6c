"""Training curves of a run folder: the loss of every optimizer step with each epoch's mean, and the
learning rate, against the step (epochs counted from 0, as ``log.csv``). :func:`epoch_loss_curve` is the
trainer callback the CLI wires in (``train(..., on_epoch_end=...)``): it redraws ``loss.png`` from the
run's ``log.jsonl`` after every epoch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..run_files import LOG_JSONL

if TYPE_CHECKING:
    from ..train.loop import EpochEnd

#: The figure :func:`epoch_loss_curve` writes into the run folder.
LOSS_FIGURE = "loss.png"

__all__ = ["LOSS_FIGURE", "epoch_loss_curve", "plot_training_curves", "read_records"]


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``log.jsonl`` (none when the file is missing; a line cut by a crash is skipped)."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def plot_training_curves(records: Sequence[dict[str, Any]], *, title: str = "") -> Figure:
    """Loss (every step, faint, and each epoch's mean at its last step) and learning rate against the
    optimizer step, from ``log.jsonl`` records (``kind`` step / epoch with ``epoch``, ``step``, ``loss``, ``lr``)."""
    steps = [r for r in records if r.get("kind") == "step" and r.get("loss") is not None]
    epochs = [r for r in records if r.get("kind") == "epoch" and r.get("loss") is not None]
    fig = Figure(figsize=(8.0, 3.2), layout="constrained")
    loss_ax, lr_ax = fig.subplots(1, 2)
    if steps:
        x = np.array([r["step"] for r in steps])
        loss_ax.plot(x, [r["loss"] for r in steps], color="C0", alpha=0.35, lw=0.8, label="step")
        lr_ax.plot(x, [r.get("lr", np.nan) for r in steps], color="C1", lw=1.2)
    if epochs:
        ex = [r.get("step", r["epoch"]) for r in epochs]
        loss_ax.plot(ex, [r["loss"] for r in epochs], "o-", color="C0", ms=3, lw=1.2, label="epoch mean")
    if not steps and not epochs:
        loss_ax.text(0.5, 0.5, "no loss logged yet", ha="center", va="center", transform=loss_ax.transAxes)
    for ax in (loss_ax, lr_ax):
        ax.set_xlabel("optimizer step")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
        ax.grid(alpha=0.3)
    loss_ax.set_ylabel("training loss")
    lr_ax.set_ylabel("learning rate")
    if steps:
        loss_ax.legend(fontsize=8)
    last = max((r.get("epoch", 0) for r in steps + epochs), default=0)
    fig.suptitle(title or f"training, epochs 0-{last} (counted from 0, as log.csv)", fontsize=10)
    return fig


def epoch_loss_curve(event: "EpochEnd") -> None:
    """``train(..., on_epoch_end=epoch_loss_curve)``: redraw ``loss.png`` in the run folder from its log."""
    from ..io import save_figure

    records = read_records(Path(event.out_dir) / LOG_JSONL)
    name = getattr(getattr(event.model, "config", None), "name", "model")
    save_figure(plot_training_curves(records, title=f"{name}: training loss and learning rate, epochs 0-"
                                                    f"{event.epoch} (counted from 0, as log.csv)"),
                Path(event.out_dir) / LOSS_FIGURE)
