"""Train once, reuse afterwards: what notebooks, experiments and the demo call so a re-run does not
pretrain the same model again."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from ..checkpoint import load_model
from .config import TrainConfig
from .loop import CHECKPOINT_NAME, TrainResult, train

# Settings that do not change the trained weights, so a finished run with other values still counts.
_IGNORED = ("out", "resume", "quiet", "num_workers", "device")


def _same_run(stored: dict, config: TrainConfig) -> bool:
    wanted = config.to_dict()
    return all(stored.get(k) == v for k, v in wanted.items() if k not in _IGNORED)


def train_or_load(config: TrainConfig, device: str = "cpu") -> TrainResult:
    """The finished run in ``config.out`` when it was trained with the same settings; otherwise
    train (resuming an interrupted run of the same settings from its last checkpoint)."""
    out = Path(config.out)
    summary_path = out / "summary.json"
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        if summary.get("status") == "completed" and _same_run(summary.get("train_config", {}), config):
            model = load_model(out / CHECKPOINT_NAME, device=device)
            return TrainResult(checkpoint=out / CHECKPOINT_NAME, final_loss=summary["final_loss"],
                               history=summary.get("history", []), out_dir=out, model=model, summary=summary)
    resume = "auto" if (out / CHECKPOINT_NAME).is_file() else None
    return train(replace(config, resume=resume))
