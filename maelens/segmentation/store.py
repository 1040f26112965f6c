"""Segmentation checkpoints: written atomically (:func:`maelens.io.atomic_path`), read back with
``torch.load(weights_only=True)``: the segmenter's weights, its architecture as a plain dict, the epoch,
the optimizer state, the run's config and resume state (history, step, RNG states)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..io import atomic_path
from .model import Segmenter

KIND = "maelens-segmenter"


@dataclass
class LoadedSegmenter:
    """A segmenter (eval mode) and what its file held beside the weights (``raw``)."""

    model: Segmenter
    epoch: int | None
    config: dict[str, Any]
    raw: dict[str, Any]


def save_segmenter(path: str | os.PathLike, model: Segmenter, *, epoch: int | None = None,
                   optimizer: torch.optim.Optimizer | None = None, config: dict[str, Any] | None = None,
                   extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (and the run's state) to ``path`` atomically."""
    payload = {"kind": KIND, "segmenter": model.describe(), "model": model.state_dict(), "epoch": epoch,
               "optimizer": optimizer.state_dict() if optimizer is not None else None,
               "config": config, "extra": extra}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_segmenter(path: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedSegmenter:
    """Read a file written by :func:`save_segmenter`; CheckpointError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such segmentation checkpoint")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable or unsafe file is refused the same way
        raise CheckpointError(f"{path}: not a readable segmentation checkpoint ({err.__class__.__name__})") from None
    if not isinstance(payload, dict) or payload.get("kind") != KIND:
        raise CheckpointError(f"{path}: not a maelens segmentation checkpoint")
    model = Segmenter.from_description(payload["segmenter"])
    model.load_state_dict(payload["model"])
    model.to(device).eval()
    epoch = payload.get("epoch")
    raw = {k: v for k, v in payload.items() if k != "model"}
    return LoadedSegmenter(model, int(epoch) if epoch is not None else None, payload.get("config") or {}, raw)

__all__ = ["KIND", "LoadedSegmenter", "load_segmenter", "save_segmenter"]
