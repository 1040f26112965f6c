"""Model configuration from what a file holds: a stored maelens config, a Hugging Face ViTMAE
``config.json``, or, when nothing is stored, the tensor shapes under official MAE names.

Shapes give every size except the number of attention heads, and a wrong head count makes every
attention map and every output of the model wrong while looking plausible. Heads are therefore never
guessed (issue 13). They are taken, in order, from an explicit ``num_heads`` / ``decoder_num_heads``
argument, from the official training script's ``args.model`` (``mae_vit_base_patch16`` -> ``mae-base``)
when its widths agree with the tensors, or from a preset whose shapes match exactly (``ipol64``,
``mae-base`` …). Otherwise loading is refused with a message naming the two options to pass, unless
the caller only describes the file (``require_heads=False``, as ``maelens info``), which then builds
the model with a placeholder of one head and reports the count as "not stored".

Every architectural fact's origin is returned as ``provenance`` (fact -> where it came from).
"""

from __future__ import annotations

import math
import re
from dataclasses import fields, replace
from typing import Any

import torch

from ..errors import CheckpointError, ConfigError
from ..models.presets import PRESETS, ModelConfig
from ..validation import MAX_DEPTH, MAX_IMAGE_SIDE, MAX_WIDTH, Field, check_fields, check_value, shown

_ENCODER_FIELDS = ("img_size", "patch_size", "in_chans", "embed_dim", "depth", "mlp_ratio", "qkv_bias")
_DECODER_FIELDS = ("decoder_embed_dim", "decoder_depth")
#: ``args.model`` names of the official pretraining and fine-tuning scripts, and their presets.
OFFICIAL_MODEL_NAMES = {
    "mae_vit_base_patch16": "mae-base", "mae_vit_large_patch16": "mae-large", "mae_vit_huge_patch14": "mae-huge",
    "vit_base_patch16": "mae-base", "vit_large_patch16": "mae-large", "vit_huge_patch14": "mae-huge",
}
NOT_STORED = "not stored"

_WIDTH = Field("int", low=1, high=MAX_WIDTH)
_DEPTH = Field("int", low=1, high=MAX_DEPTH)
#: The fields of a Hugging Face ``ViTMAEConfig`` / ``ViTConfig`` ``config.json`` maelens reads, checked before
#: any is used (``image_size`` / ``patch_size`` may also be a square pair: see :func:`_square`).
HF_CONFIG_FIELDS: dict[str, Field] = {
    "hidden_size": _WIDTH, "num_hidden_layers": _DEPTH, "num_attention_heads": _DEPTH, "intermediate_size": _WIDTH,
    "num_channels": Field("int", low=1, high=64), "decoder_hidden_size": _WIDTH,
    "decoder_num_hidden_layers": Field("int", low=0, high=MAX_DEPTH), "decoder_num_attention_heads": _DEPTH,
    "decoder_intermediate_size": _WIDTH, "layer_norm_eps": Field("float", above=0, high=1),
    "qkv_bias": Field("bool"), "norm_pix_loss": Field("bool"), "hidden_act": Field("str"),
    "mask_ratio": Field("float", low=0, high=1, optional=True), "model_type": Field("str"),
}
#: The fields of the official training script's ``args`` that maelens reads. Other scripts (timm's) store an
#: ``args`` namespace too, with other types under some of these names: a field is checked where it is used
#: (``input_size`` only for a file without ``pos_embed``), so a value maelens never reads is never refused.
OFFICIAL_ARGS_FIELDS: dict[str, Field] = {
    "input_size": Field("int", low=1, high=MAX_IMAGE_SIDE), "norm_pix_loss": Field("bool"),
}


def _architecture(config: ModelConfig, heads: bool) -> tuple:
    names = _ENCODER_FIELDS + (("num_heads",) if heads else ())
    if config.has_decoder:
        names += _DECODER_FIELDS + (("decoder_num_heads",) if heads else ())
    return tuple(getattr(config, n) for n in names) + (config.has_decoder,)


def match_preset(config: ModelConfig, heads: bool = True) -> str | None:
    """Name of the preset with the same architecture (encoder only when there is no decoder), else None."""
    target = _architecture(config, heads)
    for name, preset in PRESETS.items():
        candidate = preset if config.has_decoder else replace(preset, decoder_depth=0)
        if _architecture(candidate, heads) == target:
            return name
    return None


def config_from_dict(data: dict[str, Any], where: str) -> ModelConfig:
    """A stored maelens config dict as a :class:`ModelConfig`, or a CheckpointError naming the file."""
    try:
        return ModelConfig.from_dict(data)
    except (ConfigError, TypeError, ValueError) as err:
        raise CheckpointError(f"{where} stores an invalid model config: {err}") from None


def _count(state: dict[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.")
    indices = {int(m.group(1)) for k in state if (m := pattern.match(k))}
    if indices and indices != set(range(len(indices))):
        raise CheckpointError(f"{prefix} indices are not 0..{len(indices) - 1}: found {sorted(indices)}")
    return len(indices)


def _shape(state: dict[str, torch.Tensor], key: str, where: str) -> tuple[int, ...]:
    if key not in state:
        raise CheckpointError(f"{where} has no {key}, needed to infer the architecture")
    return tuple(state[key].shape)


def _shape_arch(state: dict[str, torch.Tensor], where: str, img_size: int | None,
                provenance: dict[str, str]) -> dict[str, Any]:
    """The widths, depths, patch and image size that the tensor shapes (official names) fix; where each came
    from goes to ``provenance``."""
    embed_dim, in_chans, ph, pw = _shape(state, "patch_embed.proj.weight", where)
    if ph != pw:
        raise CheckpointError(f"{where}: patch_embed.proj.weight has a non-square {ph}x{pw} kernel")
    depth = _count(state, "blocks")
    if depth == 0:
        raise CheckpointError(f"{where} has no encoder blocks (blocks.0.…)")
    hidden = _shape(state, "blocks.0.mlp.fc1.weight", where)[0]
    if "pos_embed" in state:
        length = _shape(state, "pos_embed", where)[-2] - 1
        grid = math.isqrt(length)
        if grid * grid != length:
            raise CheckpointError(f"{where}: pos_embed has {length} patch rows, not a square grid (plus a CLS row)")
        img_size = grid * ph
        provenance["img_size"] = "pos_embed shape"
    elif img_size is None:
        raise CheckpointError(f"{where} has no pos_embed and stores no image size: cannot tell the input size")
    else:
        provenance["img_size"] = "args.input_size"
    provenance["widths and depths"] = "tensor shapes"
    arch: dict[str, Any] = dict(img_size=img_size, patch_size=ph, in_chans=in_chans, embed_dim=embed_dim, depth=depth,
                                mlp_ratio=hidden / embed_dim, qkv_bias="blocks.0.attn.qkv.bias" in state)
    decoder_depth = _count(state, "decoder_blocks")
    if decoder_depth:
        dec_dim = _shape(state, "decoder_embed.weight", where)[0]
        dec_hidden = _shape(state, "decoder_blocks.0.mlp.fc1.weight", where)[0]
        if dec_hidden * embed_dim != hidden * dec_dim:
            raise CheckpointError(f"{where}: decoder MLP ratio {dec_hidden / dec_dim:g} differs from the encoder's "
                                  f"{hidden / embed_dim:g}; maelens models share one ratio")
        arch.update(decoder_embed_dim=dec_dim, decoder_depth=decoder_depth)
    else:
        arch.update(decoder_depth=0)
    return arch


def infer_config(state: dict[str, torch.Tensor], where: str, *, img_size: int | None = None,
                 num_heads: int | None = None, decoder_num_heads: int | None = None,
                 model_name: str | None = None, require_heads: bool = True,
                 **options: Any) -> tuple[ModelConfig, list[str], dict[str, str]]:
    """Architecture from tensor shapes (official names): ``(config, notes, provenance)``.

    ``img_size`` (e.g. the official ``args.input_size``) is used only when the file has no
    ``pos_embed``; ``model_name`` is the official ``args.model``; ``options`` (``norm_pix_loss`` …) are
    set as given. Head counts follow the module's rule; with ``require_heads`` an unknown count raises
    a CheckpointError that says how to supply it.
    """
    notes: list[str] = []
    provenance: dict[str, str] = {}
    arch = _shape_arch(state, where, img_size, provenance)
    decoder_depth = arch["decoder_depth"]
    try:
        probe = ModelConfig(num_heads=1, decoder_num_heads=1, **arch)
    except ConfigError as err:  # sizes read from the tensor shapes: the file is to blame, not an option
        raise CheckpointError(f"{where}: its tensor shapes describe an invalid model: {err}") from None
    shape_preset = match_preset(probe, heads=False)
    heads, sources = _stored_heads(probe, shape_preset, model_name, notes)
    for key, value in (("num_heads", num_heads), ("decoder_num_heads", decoder_num_heads)):
        if value is not None:
            heads[key], sources[key] = value, "given (--" + key.replace("_", "-") + ")"
    check_given_heads(probe, {"num_heads": num_heads, "decoder_num_heads": decoder_num_heads}, where)
    wanted = ("num_heads", "decoder_num_heads") if decoder_depth else ("num_heads",)
    unknown = [k for k in wanted if k not in heads]
    if unknown and require_heads:
        raise CheckpointError(_heads_message(where, probe, unknown))
    for key in unknown:
        heads[key], sources[key] = 1, NOT_STORED  # a placeholder: the parameter count does not depend on it
    if not decoder_depth:
        heads.setdefault("decoder_num_heads", 1)
    provenance.update({k: v for k, v in sources.items() if k in wanted})  # no decoder: no decoder heads
    known = {f.name for f in fields(ModelConfig)}
    name = shape_preset if shape_preset is not None and all(
        heads[k] == getattr(PRESETS[shape_preset], k) for k in wanted) else "custom"
    try:
        config = replace(probe, name=name, **heads, **{k: v for k, v in options.items() if k in known})
    except ConfigError as err:
        raise CheckpointError(f"{where}: {err}") from None
    return config, notes, provenance


def check_given_heads(config: ModelConfig, heads: dict[str, int | None], where: str) -> None:
    """A ConfigError naming the parameter (``num_heads=5``, the command line's ``--num-heads 5``) when a head
    count given by the caller does not divide the width the file stores: the bad value is the caller's, and the
    message must not blame the file."""
    widths = {"num_heads": ("embed_dim", "encoder"), "decoder_num_heads": ("decoder_embed_dim", "decoder")}
    for key, value in heads.items():
        width, part = widths[key]
        if value is None or (key == "decoder_num_heads" and not config.has_decoder):
            continue
        if getattr(config, width) % value:
            raise ConfigError(f"{key}={value} does not divide the {part} width {getattr(config, width)} of {where}")


def _stored_heads(probe: ModelConfig, shape_preset: str | None, model_name: str | None,
                  notes: list[str]) -> tuple[dict[str, int], dict[str, str]]:
    """Head counts the file itself determines: the official ``args.model`` when its widths agree with the
    tensors, else the preset whose shapes match exactly; empty when neither."""
    keys = ("num_heads", "decoder_num_heads")
    named = OFFICIAL_MODEL_NAMES.get(str(model_name)) if model_name else None
    if named is not None:
        preset = PRESETS[named]
        widths_agree = preset.embed_dim == probe.embed_dim and (
            not probe.has_decoder or preset.decoder_embed_dim == probe.decoder_embed_dim)
        if widths_agree:
            return ({k: getattr(preset, k) for k in keys}, {k: f"args.model {model_name} ({named})" for k in keys})
        notes.append(f"args.model is {model_name} but the tensor widths do not fit {named}; its head counts "
                     f"are not used")
    if shape_preset is not None:
        preset = PRESETS[shape_preset]
        return ({k: getattr(preset, k) for k in keys},
                {k: f"preset {shape_preset} (tensor shapes match it exactly)" for k in keys})
    return {}, {}


def _heads_message(where: str, probe: ModelConfig, unknown: list[str]) -> str:
    widths = {"num_heads": f"encoder width {probe.embed_dim}", "decoder_num_heads": f"decoder width {probe.decoder_embed_dim}"}
    given = " and ".join(f"{k}=H" for k in unknown)
    return (f"{where} does not store its number of attention heads ({', '.join(widths[k] for k in unknown)}; "
            f"the shapes match no preset): pass {given}, the values the model was trained with")


def config_from_hf(hf: dict[str, Any], has_decoder: bool, where: str,
                   preprocessor: dict[str, Any] | None = None, pre_where: str = "preprocessor_config.json"
                   ) -> tuple[ModelConfig, list[str], dict[str, str]]:
    """A transformers ``ViTMAEConfig`` dict as (ModelConfig, notes, provenance); LayerNorm eps included.
    A key missing from ``config.json`` takes transformers' ``ViTMAEConfig`` default, as transformers does."""
    notes: list[str] = []
    check_fields(hf, HF_CONFIG_FIELDS, where, CheckpointError)

    def origin(key: str) -> str:
        return "config.json" if key in hf else "config.json, transformers' ViTMAEConfig default"

    provenance = {"img_size": origin("image_size"), "widths and depths": "config.json",
                  "num_heads": origin("num_attention_heads"), "layer_norm_eps": origin("layer_norm_eps"),
                  "norm_pix_loss": origin("norm_pix_loss")}
    if has_decoder:
        provenance["decoder_num_heads"] = origin("decoder_num_attention_heads")
    act = hf.get("hidden_act", "gelu")
    if act != "gelu":
        raise CheckpointError(f"{where}: hidden_act {act!r} is not supported (maelens blocks use exact GELU)")
    image, patch = hf.get("image_size", 224), hf.get("patch_size", 16)
    image, patch = _square(image, "image_size", where), _square(patch, "patch_size", where)
    hidden, inter = hf.get("hidden_size", 768), hf.get("intermediate_size", 3072)
    values: dict[str, Any] = dict(
        name="custom", img_size=image, patch_size=patch, in_chans=hf.get("num_channels", 3),
        embed_dim=hidden, depth=hf.get("num_hidden_layers", 12), num_heads=hf.get("num_attention_heads", 12),
        mlp_ratio=inter / hidden, qkv_bias=hf.get("qkv_bias", True),
        norm_pix_loss=hf.get("norm_pix_loss", False), decoder_depth=0,
    )
    if has_decoder:
        dec_hidden = hf.get("decoder_hidden_size", 512)
        dec_inter = hf.get("decoder_intermediate_size", 2048)
        if dec_inter * hidden != inter * dec_hidden:
            raise CheckpointError(f"{where}: decoder MLP ratio {dec_inter / dec_hidden:g} differs from the encoder's "
                                  f"{inter / hidden:g}; maelens models share one ratio")
        values.update(decoder_embed_dim=dec_hidden, decoder_depth=hf.get("decoder_num_hidden_layers", 8),
                      decoder_num_heads=hf.get("decoder_num_attention_heads", 16))
    values["layer_norm_eps"] = float(hf.get("layer_norm_eps", 1e-12))
    normalisation = normalisation_from(preprocessor, values["in_chans"], pre_where) if preprocessor else None
    if normalisation is not None:
        values.update(norm_mean=normalisation[0], norm_std=normalisation[1])
    try:
        config = ModelConfig(**values)
    except (ConfigError, TypeError, ValueError) as err:
        raise CheckpointError(f"{where} describes an invalid model: {err}") from None
    preset = match_preset(config)
    if preset is not None:
        config = replace(config, name=preset)
    if config.layer_norm_eps != 1e-6:
        notes.append(f"LayerNorm eps {config.layer_norm_eps:g} as in config.json (maelens default 1e-6)")
    if normalisation is not None:
        provenance["normalisation"] = "preprocessor_config.json"
    return config, notes, provenance


def normalisation_from(pre: dict[str, Any], channels: int, where: str
                       ) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """``(mean, std)`` of a Hugging Face ``preprocessor_config.json`` (``image_mean`` / ``image_std``: one
    number, or one per channel; std > 0), None when it states neither; errors name that file, ``where``,
    not config.json (issue 16)."""
    given = [key for key in ("image_mean", "image_std") if key in pre]
    if not given:
        return None
    if len(given) == 1:
        other = "image_std" if given[0] == "image_mean" else "image_mean"
        raise CheckpointError(f"{where} gives {given[0]} without {other}")
    out = []
    for key in ("image_mean", "image_std"):
        value = pre[key]
        values = [value] * channels if isinstance(value, (int, float)) and not isinstance(value, bool) else value
        ok = (isinstance(values, list) and len(values) == channels
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values))
        if not ok:
            raise CheckpointError(f"{where}: {key} must be a number or a list of {channels} numbers, got {value!r}")
        if key == "image_std" and min(values) <= 0:
            raise CheckpointError(f"{where}: image_std must be > 0, got {value!r}")
        out.append(tuple(float(v) for v in values))
    return out[0], out[1]


def _square(value: Any, name: str, where: str) -> int:
    """The side of a square ``image_size`` / ``patch_size``: an integer, or a pair of equal integers."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or value[0] != value[1]:
            raise CheckpointError(f"{where}: '{name}' {shown(value)} is not square; maelens models take square inputs")
        value = value[0]
    return check_value(value, Field("int", low=1, high=MAX_IMAGE_SIDE), name, where, CheckpointError)

__all__ = ["NOT_STORED", "OFFICIAL_MODEL_NAMES", "config_from_dict", "config_from_hf", "infer_config",
    "match_preset", "normalisation_from", "HF_CONFIG_FIELDS", "OFFICIAL_ARGS_FIELDS", "check_given_heads"]
