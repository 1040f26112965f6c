"""Saving maelens checkpoints atomically and loading any supported format into a
:class:`~maelens.models.MaskedAutoencoderViT`."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..io import atomic_path
from ..models import MaskedAutoencoderViT, ModelConfig
from ..models.pos_embed import sincos_2d
from .files import Source, locate, read_json, read_weights
from .infer import NOT_STORED, config_from_dict, config_from_hf, infer_config
from .layouts import FORMATS, Layout, classify

#: Version of the maelens checkpoint layout written by :func:`save_checkpoint`.
FORMAT_VERSION = 1
_FIXED_TABLES = ("pos_embed", "decoder_pos_embed")


@dataclass
class LoadedCheckpoint:
    """A loaded model (eval mode) and what its file held.

    ``format`` is a key of :data:`FORMATS`; ``raw`` is the file's top-level dict without the weights
    (optimizer, scheduler, scaler, extra, args …; for a Hugging Face folder, its config.json under
    ``config``); ``notes`` lists guesses, ignored tensors and other departures from the file.
    """

    model: MaskedAutoencoderViT
    format: str
    config: ModelConfig
    epoch: int | None
    train_config: dict[str, Any] | None
    raw: dict[str, Any]
    path: Path
    notes: list[str] = field(default_factory=list)
    provenance: dict[str, str] = field(default_factory=dict)

    @property
    def heads_known(self) -> bool:
        """False when the file did not determine a head count and none was given (``require_heads=False``)."""
        return NOT_STORED not in (self.provenance.get("num_heads"), self.provenance.get("decoder_num_heads"))

    @property
    def release(self) -> str:
        """``encoder-only``, ``full`` (encoder and decoder) or ``training`` (with optimizer state)."""
        if not self.config.has_decoder:
            return "encoder-only"
        return "training" if self.raw.get("optimizer") is not None else "full"

    def settings(self) -> dict[str, Any]:
        """What an analysis output records about its model: file, format, kind, the head counts used and
        where each architectural fact came from."""
        return {"checkpoint": str(self.path), "checkpoint_format": self.format, "release": self.release,
                "num_heads": self.config.num_heads,
                "decoder_num_heads": self.config.decoder_num_heads if self.config.has_decoder else None,
                "norm_pix_loss": self.config.norm_pix_loss, "layer_norm_eps": self.config.layer_norm_eps,
                "provenance": dict(self.provenance)}


# ---- saving ----------------------------------------------------------------------------------
def unwrap_model(model: nn.Module) -> nn.Module:
    """The bare model inside DistributedDataParallel / DataParallel / torch.compile wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        else:
            return model


def save_checkpoint(path: str | os.PathLike, model: nn.Module, *, epoch: int | None = None,
                    optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None, scaler: Any = None,
                    train_config: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> Path:
    """Write a maelens checkpoint atomically; it loads with ``torch.load(weights_only=True)``.

    ``train_config`` and ``extra`` must hold tensors and plain values; numpy scalars/arrays and
    paths are converted (to numbers, tensors, strings), anything else raises ConfigError.
    """
    bare = unwrap_model(model)
    config = getattr(bare, "config", None)
    if not isinstance(config, ModelConfig):
        raise ConfigError(f"save_checkpoint needs a maelens MaskedAutoencoderViT, got {type(bare).__name__}")
    from .. import __version__

    payload = {
        "model": bare.state_dict(),
        "config": config.to_dict(),
        "epoch": epoch,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "train_config": train_config,
        "extra": extra,
        "maelens_version": __version__,
        "format_version": FORMAT_VERSION,
    }
    payload = {k: (v if k == "model" else _plain(v, k)) for k, v in payload.items()}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


_SCALARS = (str, int, float, bool, type(None))
_TORCH_PLAIN = (torch.Tensor, torch.Size, torch.dtype, torch.device)


def _plain(value: Any, where: str) -> Any:
    """``value`` with numpy/Path values converted; a ConfigError names anything weights-only loading refuses."""
    if type(value) in _SCALARS or isinstance(value, _TORCH_PLAIN):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value).copy())
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        return {k: _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    raise ConfigError(f"checkpoint entry {where} is a {type(value).__name__}; store tensors, numbers, strings, "
                      "lists or dicts so the file loads with weights_only=True")


# ---- loading -----------------------------------------------------------------------------------
def detect_format(path: str | os.PathLike) -> str:
    """The format of a checkpoint file or model directory: one of :data:`FORMATS`."""
    source = locate(path)
    return classify(read_weights(source.weights), str(source.weights)).format


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu", *,
                    num_heads: int | None = None, decoder_num_heads: int | None = None,
                    require_heads: bool = True) -> LoadedCheckpoint:
    """Load any supported checkpoint (format detected automatically) into a model in eval mode.

    Formats: maelens files, official facebookresearch/mae ``.pth`` (released ``{'model': …}`` or full
    training checkpoints with ``args``), Hugging Face ViTMAE directories, encoder-only ViT weights.
    Without a stored config the architecture comes from tensor shapes; ``num_heads`` /
    ``decoder_num_heads`` override the head counts (see :mod:`maelens.checkpoint.infer`). A file that does
    not determine its head counts is refused with a message naming both options, unless
    ``require_heads=False`` (describing a file, not running it): then one placeholder head is used and
    :attr:`LoadedCheckpoint.heads_known` is False.
    """
    for name, value in (("num_heads", num_heads), ("decoder_num_heads", decoder_num_heads)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    source = locate(path)
    where = str(source.weights)
    layout = classify(read_weights(source.weights), where)
    heads = {"num_heads": num_heads, "decoder_num_heads": decoder_num_heads}
    if layout.format == "maelens":
        found = _maelens_config(layout, where, heads, require_heads)
    elif layout.format == "huggingface" and (hf := _vit_mae_config(source)) is not None:
        found = _hf_config(layout, source, hf, where, heads)
    else:
        found = _shape_config(layout, where, heads, require_heads)
    notes = layout.notes + found.notes
    model = build_model(found.config, layout.state, where, notes)
    model.to(device).eval()
    epoch = found.epoch
    return LoadedCheckpoint(model=model, format=layout.format, config=found.config,
                            epoch=int(epoch) if isinstance(epoch, (int, float)) else None,
                            train_config=found.train_config, raw=found.raw, path=source.path, notes=notes,
                            provenance=found.provenance)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu", **kwargs: Any) -> MaskedAutoencoderViT:
    """The model of any supported checkpoint, in eval mode (``kwargs`` as in :func:`load_checkpoint`)."""
    return load_checkpoint(path, device, **kwargs).model


@dataclass
class _Found:
    """What a file says about its model beside the weights."""

    config: ModelConfig
    raw: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    epoch: Any = None
    train_config: dict[str, Any] | None = None
    provenance: dict[str, str] = field(default_factory=dict)


_MAELENS_PROVENANCE = {key: "maelens config" for key in (
    "img_size", "widths and depths", "num_heads", "decoder_num_heads", "norm_pix_loss", "layer_norm_eps",
    "normalisation")}


def _maelens_config(layout: Layout, where: str, heads: dict[str, int | None], require_heads: bool) -> _Found:
    rest = layout.rest
    stored = rest.get("config")
    notes: list[str] = []
    if isinstance(stored, dict):
        config = _override_heads(config_from_dict(stored, where), heads, notes, where)
        provenance = {**_MAELENS_PROVENANCE, **_given(heads)}
    else:
        config, notes, provenance = infer_config(layout.state, where, **heads, require_heads=require_heads)
    return _Found(config, rest, notes, rest.get("epoch"), rest.get("train_config"), provenance)


def _given(heads: dict[str, int | None]) -> dict[str, str]:
    return {k: "given (--" + k.replace("_", "-") + ")" for k, v in heads.items() if v is not None}


def _hf_config(layout: Layout, source: Source, hf: dict[str, Any], where: str,
               heads: dict[str, int | None]) -> _Found:
    pre = read_json(source.preprocessor_json) if source.preprocessor_json else None
    config, notes, provenance = config_from_hf(hf, "decoder_embed.weight" in layout.state, where, pre)
    config = _override_heads(config, heads, notes, where)
    train_config = {"mask_ratio": hf.get("mask_ratio"), "norm_pix_loss": config.norm_pix_loss}
    return _Found(config, {"config": hf}, notes, None, train_config, {**provenance, **_given(heads)})


def _shape_config(layout: Layout, where: str, heads: dict[str, int | None], require_heads: bool) -> _Found:
    """Official, encoder-only and config-less files: sizes from shapes; loss, input size and model name
    (for the head counts) from the official training ``args`` when stored."""
    args = _args_dict(layout.rest.get("args"))
    options = {"norm_pix_loss": bool(args["norm_pix_loss"])} if "norm_pix_loss" in args else {}
    config, notes, provenance = infer_config(layout.state, where, img_size=args.get("input_size"), **heads,
                                             model_name=args.get("model"), require_heads=require_heads, **options)
    if "norm_pix_loss" in args:
        provenance["norm_pix_loss"] = "args.norm_pix_loss"
    elif layout.format != "encoder-only":
        provenance["norm_pix_loss"] = "not stored: assumed False (reconstructions are in pixel space)"
        notes.append("norm_pix_loss not stored: assumed False")
    provenance["layer_norm_eps"] = "not stored: 1e-6, as the official MAE models"
    provenance["normalisation"] = "not stored: ImageNet mean/std, as the official MAE models"
    return _Found(config, layout.rest, notes, layout.rest.get("epoch"), args or None, provenance)


def _override_heads(config: ModelConfig, heads: dict[str, int | None], notes: list[str], where: str) -> ModelConfig:
    given = {k: v for k, v in heads.items() if v is not None}
    for key, value in given.items():
        if getattr(config, key) != value:
            notes.append(f"{key}={value} overrides the stored {getattr(config, key)}")
    if not given:
        return config
    try:
        return replace(config, **given)
    except ConfigError as err:
        raise CheckpointError(f"{where}: {err}") from None


def _vit_mae_config(source: Source) -> dict[str, Any] | None:
    """The folder's ``config.json`` when it describes a ViTMAE model (``model_type`` vit_mae or absent)."""
    if source.config_json is None:
        return None
    hf = read_json(source.config_json)
    return hf if hf.get("model_type", "vit_mae") == "vit_mae" else None


def _args_dict(args: Any) -> dict[str, Any]:
    if isinstance(args, argparse.Namespace):
        args = vars(args)
    return dict(args) if isinstance(args, dict) else {}


def build_model(config: ModelConfig, state: dict[str, torch.Tensor], where: str,
                notes: list[str] | None = None) -> MaskedAutoencoderViT:
    """A model for ``config`` holding ``state`` (official names); every mismatch names the key."""
    notes = notes if notes is not None else []
    model = MaskedAutoencoderViT(config)
    expected = model.state_dict()
    unexpected = [k for k in state if k not in expected]
    if unexpected:
        more = f" and {len(unexpected) - 4} more" if len(unexpected) > 4 else ""
        raise CheckpointError(
            f"{where} has tensors a {config.name} MAE does not use: {', '.join(unexpected[:4])}{more}"
        )
    missing = [k for k in expected if k not in state]
    required = [k for k in missing if k not in _FIXED_TABLES]
    if required:
        extra = f" and {len(required) - 4} more" if len(required) > 4 else ""
        raise CheckpointError(f"{where} lacks tensor(s) {', '.join(required[:4])}{extra} for a {config.name} model")
    if missing:
        notes.append(f"{', '.join(missing)} not stored: using the fixed 2-D sin-cos table")
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointError(f"{where}: tensor {key} has shape {tuple(tensor.shape)} in the file but the "
                                  f"{config.name} model expects {tuple(expected[key].shape)}")
    model.load_state_dict(state, strict=False)
    notes.extend(_table_notes(model, state))
    return model


def _table_notes(model: MaskedAutoencoderViT, state: dict[str, torch.Tensor]) -> list[str]:
    """Position tables are loaded as stored; say so when they are not the fixed sin-cos tables."""
    notes = []
    for key in _FIXED_TABLES:
        if key in state:
            table = torch.from_numpy(sincos_2d(state[key].shape[-1], model.grid_size)).unsqueeze(0)
            diff = (state[key].float() - table).abs().max().item()
            if diff > 1e-4:
                notes.append(f"{key} differs from the fixed 2-D sin-cos table (max |diff| {diff:.3g}); "
                             "loaded as stored")
    return notes


__all__ = ["FORMATS", "LoadedCheckpoint", "build_model", "detect_format", "load_checkpoint", "load_model",
           "save_checkpoint", "unwrap_model"]
