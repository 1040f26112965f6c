"""The notebooks' shared set-up (``notebooks/*.ipynb``), written once: the mode, the folders, the device,
the tiny MAE every notebook analyses, and a display helper.

- Mode: ``MAELENS_NOTEBOOK_MODE=full`` runs the paper's sizes; anything else (the default, what the test
  suite runs) is ``quick``, sized for a 2-core CPU.
- Runs folder: ``MAELENS_NOTEBOOK_RUNS`` when set (the test suite points it at a temporary folder, so that
  tests never write into the repository), else ``runs/notebooks`` under the repository root.
- The shared model: notebook 1 trains it, the others find it in the runs folder and reuse it
  (:func:`~maelens.train.train_or_load`).
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["NotebookSession", "notebook_session", "show"]


@dataclass(frozen=True)
class NotebookSession:
    """Settings shared by the notebooks; ``epochs`` is the shared model's pretraining length."""

    quick: bool
    root: Path
    runs: Path
    device: str
    seed: int = 0

    @property
    def epochs(self) -> int:
        return 10 if self.quick else 100

    def train_config(self, **overrides: Any):
        """The shared model's :class:`~maelens.train.TrainConfig` (``tiny`` on the bundled photographs)."""
        from .train import TrainConfig

        settings = dict(preset="tiny", data="bundled", epochs=self.epochs, batch_size=64, blr=1e-3,
                        warmup_epochs=1 if self.quick else 5, seed=self.seed, quiet=True,
                        out=str(self.runs / ("tiny-random" if self.quick else "tiny-random-full")))
        return TrainConfig(**{**settings, **overrides})

    def shared_run(self):
        """The shared model's :class:`~maelens.train.TrainResult`: trained on first use, then reused."""
        from .plots.reconstruction import epoch_reconstruction
        from .train import train_or_load

        return train_or_load(self.train_config(), device=self.device, on_epoch_end=epoch_reconstruction)


def notebook_session(seed: int = 0, cwd: Path | None = None) -> NotebookSession:
    """The session of a notebook started in ``notebooks/`` (or at the repository root)."""
    import torch

    # Progress bars are off (quiet=True); tqdm.auto would otherwise warn that ipywidgets is missing.
    warnings.filterwarnings("ignore", message="IProgress not found")
    cwd = Path.cwd() if cwd is None else Path(cwd)
    root = cwd.parent if cwd.name == "notebooks" else cwd
    runs = Path(os.environ.get("MAELENS_NOTEBOOK_RUNS") or root / "runs" / "notebooks")
    return NotebookSession(quick=os.environ.get("MAELENS_NOTEBOOK_MODE", "quick") != "full", root=root, runs=runs,
                           device="cuda" if torch.cuda.is_available() else "cpu", seed=seed)


def show(fig: Any) -> None:
    """Display a matplotlib figure as a PNG, whichever backend is active; a pyplot figure is released."""
    from IPython.display import Image, display

    from .io import close_if_pyplot

    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100, bbox_inches="tight")
    close_if_pyplot(fig)
    display(Image(png.getvalue()))
