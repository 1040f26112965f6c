"""Segmentation checkpoints: written atomically (:func:`maelens.io.atomic_path`), read back with
``torch.load(weights_only=True)``: the segmenter's weights, its architecture as a plain dict, the epoch,
the optimizer state, the run's config and resume state (history, step, RNG states)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..checkpoint.files import check_zip_integrity
from ..checkpoint.store import RUN_STATE_FIELDS, check_floating
from ..data.checks import MAX_CLASSES
from ..errors import CheckpointError, ConfigError
from ..io import atomic_path
from ..paths import check_input
from ..validation import Field, check_fields
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
    path = check_input(path, "segmentation checkpoint", error=CheckpointError, directory=False)
    check_zip_integrity(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable or unsafe file is refused the same way
        raise CheckpointError(f"{path}: not a readable segmentation checkpoint ({err.__class__.__name__})") from None
    if not isinstance(payload, dict) or payload.get("kind") != KIND:
        raise CheckpointError(f"{path}: not a maelens segmentation checkpoint")
    model = _segmenter(payload, str(path))
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as err:  # missing, unexpected or mis-shaped tensors: torch's first line names them
        raise CheckpointError(f"{path}: its weights do not fit the segmenter it describes "
                              f"({str(err).strip().splitlines()[-1].strip()[:160]})") from None
    model.to(device).eval()
    epoch = payload.get("epoch")
    raw = {k: v for k, v in payload.items() if k != "model"}
    return LoadedSegmenter(model, int(epoch) if epoch is not None else None, payload.get("config") or {}, raw)

#: The fields of a segmentation checkpoint's ``segmenter`` record (its ``encoder`` is a ModelConfig, checked by it).
SEGMENTER_FIELDS = {"num_classes": Field("int", low=1, high=MAX_CLASSES), "decoder": Field("str")}


def _segmenter(payload: dict[str, Any], where: str) -> Segmenter:
    """The model a segmentation checkpoint describes, every stored field checked before it is built (issue 29)."""
    check_fields(payload, {"epoch": RUN_STATE_FIELDS["epoch"]}, where, CheckpointError)
    record, state = payload.get("segmenter"), payload.get("model")
    if not isinstance(record, dict) or not isinstance(record.get("encoder"), dict):
        raise CheckpointError(f"{where}: 'segmenter' must be a record with an 'encoder' config")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{where}: 'model' must be a dict of tensors")
    check_fields(record, SEGMENTER_FIELDS, where, CheckpointError)
    check_floating(state, where)
    try:
        return Segmenter.from_description(record)
    except (ConfigError, ValueError) as err:
        raise CheckpointError(f"{where} stores an invalid model config: {err}") from None


__all__ = ["KIND", "LoadedSegmenter", "load_segmenter", "save_segmenter"]
