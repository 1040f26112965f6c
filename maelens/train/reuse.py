"""Train once, reuse afterwards: what notebooks, experiments and the demo call so a re-run does not
pretrain the same model again."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Callable

from .. import run_files
from ..checkpoint import load_checkpoint
from ..errors import ConfigError
from .config import TrainConfig
from .loop import CHECKPOINT_NAME, EpochEnd, TrainResult, train
from .resume import differences

#: Settings that do not change the trained weights: a run stored with other values still counts.
_IGNORED = ("out", "resume", "quiet", "num_workers", "device", "settings_from")


def _differences(stored: dict, config: TrainConfig) -> list[str]:
    """Settings that differ; a setting missing from an older stored config counts as its default, except
    the fields of :data:`~.resume.BEFORE_THE_FIELD`, whose earlier behaviour is stated there."""
    return differences(stored, config, ignore=_IGNORED)


def train_or_load(config: TrainConfig, device: str = "cpu",
                  on_epoch_end: Callable[[EpochEnd], None] | None = None) -> TrainResult:
    """The finished run in ``config.out`` if it was trained with these settings; an interrupted one is
    resumed from its last checkpoint; an empty folder gets a new run. A folder holding a run with
    other settings is refused rather than overwritten or silently mixed. ``on_epoch_end`` as for
    :func:`~maelens.train.train` (called only for the epochs trained now)."""
    out = Path(config.out)
    checkpoint = out / CHECKPOINT_NAME
    if not checkpoint.is_file():
        return train(replace(config, resume=None), on_epoch_end=on_epoch_end)
    stored = load_checkpoint(checkpoint, device=device)
    differ = _differences(stored.train_config or {}, config)
    if stored.config.to_dict() != config.model_config().to_dict():
        differ.append("model architecture")
    if differ:
        raise ConfigError(f"{out} holds a run trained with other settings ({', '.join(differ)}); "
                          f"choose another output folder or remove that one")
    summary_path = out / run_files.SUMMARY
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    if summary.get("status") == "completed" and summary.get("epochs_completed", 0) >= config.epochs:
        return TrainResult(checkpoint=checkpoint, final_loss=summary["final_loss"],
                           history=summary.get("history", []), out_dir=out, model=stored.model, summary=summary)
    return train(replace(config, resume="auto"), on_epoch_end=on_epoch_end)

__all__ = ["train_or_load"]
