"""Saving maelens checkpoints atomically and loading any supported format into a
:class:`~maelens.models.MaskedAutoencoderViT` (or, for a maelens SimCLR run, a
:class:`~maelens.models.simclr.SimCLR`: :mod:`.simclr`)."""

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
from ..models.cae_config import is_cae_config
from ..models.mae import EncoderHead
from ..models.simclr import SimCLR
from ..models.simclr_config import SimCLRConfig, is_simclr_config
from ..validation import Field, check_fields
from .build import build_model
from .files import Source, locate, read_json, read_weights
from .infer import NOT_STORED, OFFICIAL_ARGS_FIELDS, check_given_heads, config_from_dict, config_from_hf, infer_config
from .layouts import FORMATS, Layout, classify, name_list
from .resize import POSITION_TABLES, SINCOS_TOLERANCE, resize_inputs, sincos_difference
from .timm_vit import TimmEncoder, load_timm_encoder

#: Version of the maelens checkpoint layout written by :func:`save_checkpoint`.
FORMAT_VERSION = 1
#: The run-state fields beside the weights that loading reads (every format that stores them), checked before
#: use: a non-finite or negative epoch counter must not reach a resumed run (issue 29).
RUN_STATE_FIELDS = {
    "epoch": Field("int", low=0, high=10**9, optional=True),
    "format_version": Field("int", low=1, high=FORMAT_VERSION),
    "maelens_version": Field("str"),
    "train_config": Field("dict", optional=True),
    "extra": Field("dict", optional=True),
}
#: What a resumed run reads from a maelens checkpoint's ``extra`` record (the training loop's own state).
RUN_EXTRA_FIELDS = {
    "global_step": Field("int", low=0, high=10**12, optional=True),
    "history": Field("list", optional=True),
    "rank_states": Field("list", optional=True),
}
#: Tensors of integer type a state dict may legitimately hold (a BatchNorm's step counter).
_COUNTERS = ("num_batches_tracked",)
#: Names of the official visualisation releases (``mae_visualize_vit_large.pth`` ...): full models
#: trained with pixel targets, ``norm_pix_loss=False``, so that reconstructions can be shown.
_VISUALIZE_RELEASE = "mae_visualize_"


@dataclass
class LoadedCheckpoint:
    """A loaded model (eval mode) and what its file held: an MAE, or a SimCLR model (``method == "simclr"``,
    ``config`` a :class:`~maelens.models.simclr_config.SimCLRConfig`) from a maelens SimCLR run.

    ``format`` is a key of :data:`FORMATS`; ``raw`` is the file's top-level dict without the weights
    (optimizer, scheduler, scaler, extra, args …; for a Hugging Face folder, its config.json under
    ``config``); ``notes`` lists guesses, ignored tensors and other departures from the file;
    ``provenance`` says where each architectural fact came from; ``classifier`` is ``fine-tuned`` or
    ``linear-probe`` when the file held one (not loaded: maelens analyses the encoder).
    """

    model: MaskedAutoencoderViT | SimCLR
    format: str
    config: ModelConfig | SimCLRConfig
    epoch: int | None
    train_config: dict[str, Any] | None
    raw: dict[str, Any]
    path: Path | None
    notes: list[str] = field(default_factory=list)
    provenance: dict[str, str] = field(default_factory=dict)
    classifier: str | None = None
    #: what was loaded when it was no file (``path`` None): a model object in memory, e.g.
    #: ``timm VisionTransformer vit_base_patch16_224 (in memory)``
    origin: str = ""

    @property
    def where(self) -> str:
        """The file or folder loaded, or the model object's description when it came from memory."""
        return str(self.path) if self.path is not None else self.origin

    @property
    def method(self) -> str:
        """``mae``, or ``simclr`` for the model of a maelens SimCLR run."""
        return getattr(self.config, "method", "mae")

    @property
    def heads_known(self) -> bool:
        """False when the file did not determine a head count and none was given (``require_heads=False``)."""
        return NOT_STORED not in (self.provenance.get("num_heads"), self.provenance.get("decoder_num_heads"))

    @property
    def release(self) -> str:
        """``fine-tuned`` / ``linear-probe`` (an encoder with a classifier), ``encoder-only``, ``full``
        (encoder and decoder) or ``training`` (with optimizer state)."""
        if self.classifier is not None:
            return self.classifier
        if not self.config.has_decoder and self.method == "mae":
            return "encoder-only"
        return "training" if self.raw.get("optimizer") is not None else "full"

    @property
    def pooling(self) -> str | None:
        """How the fine-tuned encoder pools its tokens (:meth:`EncoderHead.describe`), None for an MAE."""
        head = getattr(self.model, "encoder_head", None)
        return head.describe() if head is not None else None

    def settings(self) -> dict[str, Any]:
        """What an analysis output records about its model: file, format, kind, input size, the head counts
        used, how a fine-tuned classifier pooled the tokens (``classifier_pooling``) and where each
        architectural fact came from."""
        if self.method != "mae":
            return {"checkpoint": self.where, "checkpoint_format": self.format, "release": self.release,
                    "method": self.method, "image_size": self.config.img_size, "model": self.config.to_dict(),
                    "provenance": dict(self.provenance)}
        return {"checkpoint": self.where, "checkpoint_format": self.format, "release": self.release,
                "image_size": self.config.img_size, "num_heads": self.config.num_heads,
                "decoder_num_heads": self.config.decoder_num_heads if self.config.has_decoder else None,
                "norm_pix_loss": self.config.norm_pix_loss, "layer_norm_eps": self.config.layer_norm_eps,
                "classifier_pooling": self.pooling, "provenance": dict(self.provenance)}


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
    if not isinstance(config, (ModelConfig, SimCLRConfig)):
        raise ConfigError(f"save_checkpoint needs a maelens MaskedAutoencoderViT or SimCLR model, "
                          f"got {type(bare).__name__}")
    from .._version import __version__

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


def load_checkpoint(path: str | os.PathLike | nn.Module, device: str | torch.device = "cpu", *,
                    num_heads: int | None = None, decoder_num_heads: int | None = None,
                    require_heads: bool = True, arch: str | None = None, image_size: int | None = None,
                    allow_nonfinite: bool = False) -> LoadedCheckpoint:
    """Load any supported checkpoint (format detected automatically) into a model in eval mode.

    Formats: maelens files, official facebookresearch/mae ``.pth`` (released ``{'model': …}``, the
    ``visualize`` releases, full training checkpoints with ``args``, fine-tuned and linear-probe files,
    which load as encoders with the pooling they were trained with), Hugging Face ViTMAE directories,
    encoder-only ViT weights; ``module.`` / ``backbone.`` / ``encoder.`` / ``model.`` prefixes are removed.

    ``path`` may also be a model object in hand (:mod:`maelens.checkpoint.objects`): a maelens model, a timm
    ``VisionTransformer`` (converted exactly, as ``arch='timm:NAME'`` converts a file) or a transformers
    ``ViTMAEForPreTraining`` / ``ViTMAEModel`` / ``ViTModel`` / ``ViTForImageClassification``; it is read
    as its saved files would be (same config, provenance and notes), into a new model: the object is
    not changed.

    Args:
        num_heads, decoder_num_heads: head counts, for files that do not determine them (see
            :mod:`maelens.checkpoint.infer`); a file that does not is refused with a message naming both,
            unless ``require_heads=False`` (describing a file, not running it): then one placeholder head
            is used and :attr:`LoadedCheckpoint.heads_known` is False.
        arch: ``timm:NAME`` to build a timm Vision Transformer and load the file into it
            (:mod:`maelens.checkpoint.timm_vit`); the widths and head counts then come from timm.
        image_size: run the model on square inputs of this size: sin-cos position tables are regenerated
            for the new grid, learned ones resampled bicubically (:mod:`maelens.checkpoint.resize`).
        allow_nonfinite: load weights holding NaN or inf (for inspection); by default they are refused
            with the names of the tensors.
    """
    for name, value in (("num_heads", num_heads), ("decoder_num_heads", decoder_num_heads),
                        ("image_size", image_size)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(path, nn.Module):
        from .objects import read_object

        if arch is not None:
            raise ConfigError(f"arch={arch} names the timm model to build for a file; a model object is "
                              "converted as it is (leave arch out)")
        held = read_object(path)
        where, file_path, layout, timm_encoder = held.where, None, held.layout, held.timm
        hf, pre = held.hf_config, None  # an object has no preprocessor_config.json: ImageNet normalisation
        hf_where = where
    else:
        source = locate(path)
        where, file_path, timm_encoder = str(source.weights), source.path, None
        layout = classify(read_weights(source.weights), where)
        hf = _vit_mae_config(source) if layout.format == "huggingface" else None
        pre = (read_json(source.preprocessor_json), str(source.preprocessor_json)) \
            if hf is not None and source.preprocessor_json else None
        hf_where = str(source.config_json) if hf is not None else where  # config.json's errors name that file
    check_fields(layout.rest, RUN_STATE_FIELDS, where, CheckpointError)
    if layout.format == "maelens" and isinstance(layout.rest.get("extra"), dict):
        check_fields(layout.rest["extra"], RUN_EXTRA_FIELDS, f"{where} (its 'extra' run state)", CheckpointError)
    check_floating(layout.state, where)
    finite_notes = check_finite(layout.state, where, allow_nonfinite)
    heads = {"num_heads": num_heads, "decoder_num_heads": decoder_num_heads}
    if layout.format == "maelens" and (is_simclr_config(layout.rest.get("config"))
                                       or is_cae_config(layout.rest.get("config"))):
        loaded = _method_checkpoint(layout, file_path, where, layout.notes + finite_notes, device,
                                    given={**heads, "arch": arch}, image_size=image_size)
        loaded.origin = where
        return loaded
    if timm_encoder is not None:
        _no_heads_given(heads, "a timm model object")
        found = _timm_found(layout, timm_encoder)
    elif arch is not None:
        found = _timm_config(layout, arch, where, heads)
    elif layout.format == "maelens":
        found = _maelens_config(layout, where, heads, require_heads)
    elif layout.format == "huggingface" and hf is not None:
        found = _hf_config(layout, hf, pre, hf_where, heads)
    else:
        found = _shape_config(layout, where, heads, require_heads)
    notes = layout.notes + found.notes + finite_notes
    provenance = {**layout.provenance, **found.provenance}
    state = found.state if found.state is not None else layout.state
    config = found.config
    provenance.update(position_provenance(config, state))
    if image_size is not None:
        config, state, resized = resize_inputs(config, state, image_size, where)
        provenance.update(resized)
    model = build_model(config, state, where, notes, head=found.head)
    model.to(device).eval()
    epoch = found.epoch
    return LoadedCheckpoint(model=model, format=found.format or layout.format, config=config,
                            epoch=int(epoch) if isinstance(epoch, (int, float)) else None,
                            train_config=found.train_config, raw=found.raw, path=file_path, notes=notes,
                            provenance=provenance, classifier=layout.release, origin=where)


def _method_checkpoint(layout: Layout, path: Path | None, where: str, notes: list[str], device: str | torch.device, *,
                       given: dict[str, Any], image_size: int | None) -> LoadedCheckpoint:
    """The model of a maelens SimCLR or CAE run (:mod:`.simclr`, :mod:`.cae`), rebuilt from its stored config."""
    if is_cae_config(layout.rest.get("config")):
        from .cae import load_cae as load
    else:
        from .simclr import load_simclr as load
    model, config, provenance = load(layout, where, device, given=given, image_size=image_size)
    epoch = layout.rest.get("epoch")
    return LoadedCheckpoint(model=model, format="maelens", config=config,
                            epoch=int(epoch) if isinstance(epoch, (int, float)) else None,
                            train_config=layout.rest.get("train_config"), raw=layout.rest, path=path, notes=notes,
                            provenance=provenance)


def check_floating(state: dict[str, torch.Tensor], where: str) -> None:
    """Refuse weights that are not floating point (integer, boolean or complex tensors), naming them: cast to
    float they would load and compute numbers that mean nothing (issue 30). BatchNorm step counters, integer
    by nature and never used by an encoder, are the exception."""
    bad = [f"{k} ({str(v.dtype).replace('torch.', '')})" for k, v in state.items()
           if not v.is_floating_point() and not k.endswith(_COUNTERS)]
    if bad:
        raise CheckpointError(f"{where}: weights must be floating point, but {len(bad)} tensor(s) are not: "
                              f"{name_list(bad)}")


def check_finite(state: dict[str, torch.Tensor], where: str, allow: bool = False) -> list[str]:
    """Refuse weights holding NaN or inf, naming the tensors (a model that cannot give a meaningful number,
    issue 16); with ``allow`` they load, and the returned note says which tensors are affected."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if not bad:
        return []
    names = name_list(bad)
    if allow:
        return [f"NaN or infinite values in {len(bad)} tensor(s): {names}; loaded for inspection only"]
    raise CheckpointError(f"{where} holds NaN or infinite weights in {len(bad)} tensor(s): {names}; no analysis "
                          "of it can be meaningful (to inspect it anyway: maelens info --allow-nonfinite, "
                          "allow_nonfinite=True in Python)")


def position_provenance(config: ModelConfig, state: dict[str, torch.Tensor]) -> dict[str, str]:
    """For each position table of the model: the fixed sin-cos formula (stored or not) or a learned table."""
    out = {}
    for key in POSITION_TABLES:
        if key == "decoder_pos_embed" and not config.has_decoder:
            continue
        diff = sincos_difference(state[key], config.grid_size) if key in state else 0.0
        if key not in state:
            out[key] = "not stored: the fixed 2-D sin-cos table"
        elif diff <= SINCOS_TOLERANCE:
            out[key] = "stored, the fixed 2-D sin-cos table"
        else:
            out[key] = f"stored, learned: loaded as stored (max |difference| from the sin-cos table {diff:.3g})"
    return out


def load_model(path: str | os.PathLike | nn.Module, device: str | torch.device = "cpu",
               **kwargs: Any) -> MaskedAutoencoderViT | SimCLR:
    """The model of any supported checkpoint or model object in hand, in eval mode (``kwargs`` as in
    :func:`load_checkpoint`): an MAE, or the SimCLR model of a maelens SimCLR run."""
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
    head: EncoderHead | None = None
    #: weights to load when they differ from the layout's (a converted timm model)
    state: dict[str, torch.Tensor] | None = None
    #: the format when it differs from the layout's
    format: str | None = None


_MAELENS_PROVENANCE = {key: "maelens config" for key in (
    "img_size", "widths and depths", "num_heads", "decoder_num_heads", "norm_pix_loss", "layer_norm_eps",
    "normalisation")}


def _maelens_config(layout: Layout, where: str, heads: dict[str, int | None], require_heads: bool) -> _Found:
    rest = layout.rest
    stored = rest.get("config")
    notes: list[str] = []
    if stored is not None and not isinstance(stored, dict):
        raise CheckpointError(f"{where}: 'config' must be a dict (the model's stored configuration), got "
                              f"{type(stored).__name__}")
    if isinstance(stored, dict):
        config = _override_heads(config_from_dict(stored, where), heads, notes, where)
        provenance = {**_MAELENS_PROVENANCE, **_given(heads)}
    else:
        config, notes, provenance = infer_config(layout.state, where, **heads, require_heads=require_heads)
    return _Found(config, rest, notes, rest.get("epoch"), rest.get("train_config"), provenance)


def _given(heads: dict[str, int | None]) -> dict[str, str]:
    return {k: "given (--" + k.replace("_", "-") + ")" for k, v in heads.items() if v is not None}


def _hf_config(layout: Layout, hf: dict[str, Any], pre: tuple[dict[str, Any], str] | None, where: str,
               heads: dict[str, int | None]) -> _Found:
    """``pre``: the preprocessor config and where it was read (a folder's ``preprocessor_config.json``);
    ``where``: the config's origin (a folder's ``config.json``, or the model object)."""
    config, notes, provenance = config_from_hf(hf, "decoder_embed.weight" in layout.state, where,
                                               *(pre if pre is not None else (None,)))
    config = _override_heads(config, heads, notes, where)
    train_config = {"mask_ratio": hf.get("mask_ratio"), "norm_pix_loss": config.norm_pix_loss}
    return _Found(config, {"config": hf}, notes, None, train_config, {**provenance, **_given(heads)}, layout.head)


def _shape_config(layout: Layout, where: str, heads: dict[str, int | None], require_heads: bool) -> _Found:
    """Official, encoder-only and config-less files: sizes from shapes; loss, input size and model name
    (for the head counts) from the official training ``args`` when stored."""
    args = _args_dict(layout.rest.get("args"))
    used = {k: v for k, v in OFFICIAL_ARGS_FIELDS.items() if k != "input_size" or "pos_embed" not in layout.state}
    check_fields(args, used, f"{where} (its training args)", CheckpointError)
    options = {"norm_pix_loss": bool(args["norm_pix_loss"])} if "norm_pix_loss" in args else {}
    config, notes, provenance = infer_config(layout.state, where, img_size=args.get("input_size"), **heads,
                                             model_name=args.get("model"), require_heads=require_heads, **options)
    if "norm_pix_loss" in args:
        provenance["norm_pix_loss"] = "args.norm_pix_loss"
    elif Path(where).name.startswith(_VISUALIZE_RELEASE) and layout.format == "official":
        provenance["norm_pix_loss"] = ("False: an official visualize release (trained with pixel targets so that "
                                       "reconstructions can be shown)")
    elif layout.format != "encoder-only":
        provenance["norm_pix_loss"] = "not stored: assumed False (reconstructions are in pixel space)"
        notes.append("norm_pix_loss not stored: assumed False")
    provenance["layer_norm_eps"] = "not stored: 1e-6, as the official MAE models"
    provenance["normalisation"] = "not stored: ImageNet mean/std, as the official MAE models"
    if layout.head is not None and "global_pool" in args and bool(args["global_pool"]) != (layout.head.pool == "avg"):
        notes.append(f"args.global_pool is {args['global_pool']} but the keys say {layout.head.describe()}; "
                     "the keys are followed")
    return _Found(config, layout.rest, notes, layout.rest.get("epoch"), args or None, provenance, layout.head)


def _timm_config(layout: Layout, arch: str, where: str, heads: dict[str, int | None]) -> _Found:
    """A timm ViT (``--arch timm:NAME``) converted to a maelens encoder; its head counts come from timm."""
    if layout.format not in ("encoder-only", "official"):
        raise CheckpointError(f"arch={arch} takes timm weights; {where} is a {FORMATS[layout.format]}")
    _no_heads_given(heads, f"arch={arch}")
    return _timm_found(layout, load_timm_encoder(arch, layout.state, where))


def _no_heads_given(heads: dict[str, int | None], what: str) -> None:
    given = [k for k, v in heads.items() if v is not None]
    if given:
        raise ConfigError(f"{' and '.join(given)} cannot be combined with {what}: timm's model gives the heads")


def _timm_found(layout: Layout, encoder: TimmEncoder) -> _Found:
    return _Found(encoder.config, {**layout.rest}, encoder.notes, layout.rest.get("epoch"), None, encoder.provenance,
                  encoder.head, encoder.state, "timm")


def _override_heads(config: ModelConfig, heads: dict[str, int | None], notes: list[str], where: str) -> ModelConfig:
    given = {k: v for k, v in heads.items() if v is not None}
    check_given_heads(config, heads, where)
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
    """The folder's ``config.json`` when it describes a ViTMAE model (``model_type`` vit_mae or absent) or
    a plain ViT (``vit``, e.g. a fine-tuned ``ViTForImageClassification``: the same encoder fields)."""
    if source.config_json is None:
        return None
    hf = read_json(source.config_json)
    check_fields(hf, {"model_type": Field("str")}, str(source.config_json), CheckpointError)
    return hf if hf.get("model_type", "vit_mae") in ("vit_mae", "vit") else None


def _args_dict(args: Any) -> dict[str, Any]:
    if isinstance(args, argparse.Namespace):
        args = vars(args)
    return dict(args) if isinstance(args, dict) else {}


__all__ = ["FORMATS", "LoadedCheckpoint", "build_model", "detect_format", "load_checkpoint", "load_model",
           "save_checkpoint", "unwrap_model"]
