"""timm Vision Transformers as maelens encoders (``--arch timm:NAME --ckpt weights``).

The model is built with timm from its name (``timm.create_model(name, pretrained=False,
num_classes=0)``: nothing is downloaded), the file's weights are loaded into it strictly, and the
result is converted into an encoder-only :class:`~maelens.models.MaskedAutoencoderViT`, which every
encoder analysis (features, distfit, kNN and probes, attention distance and entropy per head) runs
on. A plain timm ViT (a CLS token, an absolute position table, standard pre-norm blocks of timm's
``Attention`` and ``Mlp`` with exact GELU, LayerNorm) is the same computation under the same tensor
names, so the conversion is exact: it is checked on a random input against timm's own
``forward_features``. LayerScale (DeiT III, DINOv2) is folded into the projections it scales, and a
position table without a CLS row (``no_embed_class``) gains a zero row: both exact up to rounding.
What maelens cannot represent (register tokens, no CLS token, no or relative position embedding,
q/k norms, SwiGLU, attention-pool heads, ...) is refused with the reason.

Patch size, depth and input size are taken from the file when they differ from the named model's
defaults (a small model trained at 32x32 with ``vit_tiny_patch16_224``'s widths loads under that name);
widths and head counts come from the name.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import torch
from timm.layers import LayerNorm as TimmLayerNorm
from torch import nn

from ..errors import CheckpointError
from ..models import ModelConfig
from ..models.mae import EncoderHead
from .build import build_model
from .layouts import name_list

#: ``--arch`` values name a timm model after this prefix.
TIMM_PREFIX = "timm:"
#: The normalisation layers a maelens block computes (timm's LayerNorm is nn.LayerNorm's subclass).
_LAYER_NORMS = (nn.LayerNorm, TimmLayerNorm)
#: Largest relative difference between maelens's and timm's features accepted by the conversion check.
CHECK_TOLERANCE = 1e-5


@dataclass
class TimmEncoder:
    """A timm ViT converted for maelens: its ``config``, pooling ``head``, ``state`` under maelens names,
    and ``notes`` / ``provenance`` saying what was taken from where."""

    config: ModelConfig
    head: EncoderHead | None
    state: dict[str, torch.Tensor]
    notes: list[str] = field(default_factory=list)
    provenance: dict[str, str] = field(default_factory=dict)


def timm_name(arch: str) -> str:
    """The timm model name of an ``--arch`` value (``timm:vit_base_patch16_224`` -> ``vit_base_patch16_224``)."""
    if not isinstance(arch, str) or not arch.startswith(TIMM_PREFIX) or not arch[len(TIMM_PREFIX):]:
        raise CheckpointError(f"arch={arch}: expected timm:NAME, a timm Vision Transformer such as "
                              "timm:vit_base_patch16_224")
    return arch[len(TIMM_PREFIX):]


def load_timm_encoder(arch: str, state: dict[str, torch.Tensor], where: str) -> TimmEncoder:
    """Build the timm model ``arch`` (``timm:NAME``), load ``state`` into it strictly and convert it.

    Every mismatch names the tensors (missing, unexpected, wrong shape); a structure maelens cannot
    represent is refused with the reason.
    """
    import timm

    name = timm_name(arch)
    if not timm.is_model(name.split(".")[0]):
        raise CheckpointError(f"arch={arch}: timm {timm.__version__} has no model named {name.split('.')[0]} "
                              "(e.g. vit_base_patch16_224, vit_small_patch14_dinov2)")
    notes: list[str] = []
    defaults = _defaults(name, arch)
    overrides = _overrides_from_file(state)
    try:
        model = timm.create_model(name, pretrained=False, num_classes=0, **overrides)
    except (TypeError, ValueError, AssertionError, RuntimeError) as err:
        raise CheckpointError(f"arch={arch}: timm cannot build {name} with {_shown(overrides)} read from "
                              f"{where} ({err})") from None
    changed = {k: v for k, v in overrides.items() if defaults.get(k) not in (None, v)}
    if changed:
        notes.append(f"{_shown(changed)} from the file ({name}'s defaults: "
                     f"{_shown({k: defaults[k] for k in changed})})")
    _load_strict(model, state, arch, where)
    model.eval()
    return _convert_checked(model, name, notes)


def convert_timm_vit(model: nn.Module) -> TimmEncoder:
    """The exact maelens encoder of a timm ``VisionTransformer`` instance already in hand (a notebook's
    ``timm.create_model(...)``): the conversion of ``--arch timm:NAME``, with the same checks, refusals and
    provenance. The model is left as it was (its train/eval mode restored; nothing is copied to it).

    Raises:
        CheckpointError: ``model`` is not a plain timm VisionTransformer, or holds what a maelens encoder
            cannot compute exactly (named, as for a file).
    """
    from timm.models.vision_transformer import VisionTransformer

    if not isinstance(model, VisionTransformer):
        raise CheckpointError(f"model: expected a timm VisionTransformer, got a {type(model).__name__}")
    cfg = getattr(model, "pretrained_cfg", None) or {}
    name = str(cfg.get("architecture") or type(model).__name__)
    notes = ["converted from a timm model object in memory"]
    if not isinstance(getattr(model, "head", None), (nn.Identity, type(None))):
        notes.append("classifier head not converted: maelens analyses the encoder")
    training = model.training
    model.eval()
    try:
        return _convert_checked(model, name, notes)
    finally:
        model.train(training)


def _convert_checked(model: nn.Module, name: str, notes: list[str]) -> TimmEncoder:
    """Refuse what a maelens encoder cannot represent, convert, and check the result against timm."""
    arch = TIMM_PREFIX + name
    _check_representable(model, arch)
    encoder = _convert(model, name, notes)
    _check_equal(model, encoder, arch)
    return encoder


def _overrides_from_file(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The options of timm's ``VisionTransformer`` that the keys and shapes determine: ``patch_size``,
    ``depth``, ``img_size``, average or attention pooling, ``qkv_bias``, LayerScale
    (``init_values``; its value is loaded), ``qk_norm``, register tokens, no CLS token, no position table
    and a position table without a CLS row (``no_embed_class``)."""
    out: dict[str, Any] = {}
    proj = state.get("patch_embed.proj.weight")
    if proj is not None and proj.ndim == 4 and proj.shape[-1] == proj.shape[-2]:
        out["patch_size"] = int(proj.shape[-1])
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))}
    if blocks:
        out["depth"] = max(blocks) + 1
    if "fc_norm.weight" in state and "norm.weight" not in state:
        out["global_pool"] = "avg"  # timm's only structure with these keys: the mean of the patch tokens, fc_norm
    if any(k.startswith("attn_pool.") for k in state):
        out["global_pool"] = "map"  # an attention-pool head (SigLIP style)
    if "blocks.0.attn.qkv.weight" in state:
        out["qkv_bias"] = "blocks.0.attn.qkv.bias" in state
        out["qk_norm"] = "blocks.0.attn.q_norm.weight" in state
        out["init_values"] = 1.0 if "blocks.0.ls1.gamma" in state else None
    registers = state.get("reg_token")
    out["reg_tokens"] = int(registers.shape[1]) if registers is not None and registers.ndim == 3 else 0
    out["class_token"] = "cls_token" in state
    if not out["class_token"]:
        out["global_pool"] = out.get("global_pool", "avg")  # timm refuses token pooling without a CLS token
    pos = state.get("pos_embed")
    if pos is None:
        out["pos_embed"] = "none"
    elif "patch_size" in out and pos.ndim == 3:
        prefix = int("cls_token" in state) + out.get("reg_tokens", 0)
        for tokens, no_embed_class in ((prefix, False), (0, True)):
            grid = math.isqrt(max(pos.shape[1] - tokens, 0))
            if grid and grid * grid == pos.shape[1] - tokens:
                out["img_size"] = grid * out["patch_size"]
                out["no_embed_class"] = no_embed_class and prefix > 0
                break
    return out


def _defaults(name: str, arch: str) -> dict[str, Any]:
    """The named model's structural defaults (the options :func:`_overrides_from_file` may change), read
    from a copy built on the meta device (no memory, no initialisation); a model that is not timm's plain
    ``VisionTransformer`` is refused here, before options it may not take are passed to it."""
    import timm
    from timm.models.vision_transformer import VisionTransformer

    try:
        with torch.device("meta"):
            model = timm.create_model(name, pretrained=False, num_classes=0)
    except Exception:  # a description only: the model itself is built next, where errors are reported
        return {}
    if type(model) is not VisionTransformer:
        raise CheckpointError(f"arch={arch} builds a timm {type(model).__name__}, not a plain VisionTransformer: "
                              "maelens converts only the ViTs it can represent exactly")
    blk = model.blocks[0]
    return {"patch_size": model.patch_embed.patch_size[0], "depth": len(model.blocks),
            "img_size": model.patch_embed.img_size[0], "global_pool": model.global_pool,
            "qkv_bias": blk.attn.qkv.bias is not None,
            "init_values": None if isinstance(blk.ls1, nn.Identity) else 1.0,
            "qk_norm": not isinstance(blk.attn.q_norm, nn.Identity), "reg_tokens": model.num_reg_tokens,
            "class_token": model.has_class_token, "no_embed_class": model.no_embed_class,
            "pos_embed": "learn" if model.pos_embed is not None else "none"}


def _shown(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "no size"


def _load_strict(model: nn.Module, state: dict[str, torch.Tensor], arch: str, where: str) -> None:
    """Load ``state`` into the timm model; missing, unexpected and mis-shaped tensors are named."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise CheckpointError(f"{where} does not hold the weights of {arch}: {key_mismatch(missing, unexpected)}")
    wrong = [f"{k} {tuple(v.shape)} (expected {tuple(expected[k].shape)})" for k, v in state.items()
             if tuple(v.shape) != tuple(expected[k].shape)]
    if wrong:
        raise CheckpointError(f"{where} does not hold the weights of {arch}: wrong shape of {name_list(wrong)}")
    model.load_state_dict(state, strict=True)


def key_mismatch(missing: list[str], unexpected: list[str]) -> str:
    """``missing a, b; unexpected c`` with at most four names of each."""
    parts = []
    if missing:
        parts.append(f"missing {name_list(missing)}")
    if unexpected:
        parts.append(f"unexpected {name_list(unexpected)}")
    return "; ".join(parts)


def _check_representable(model: nn.Module, arch: str) -> None:
    """Raise a CheckpointError naming everything in ``model`` that a maelens encoder cannot compute."""
    from timm.models.vision_transformer import VisionTransformer

    if type(model) is not VisionTransformer:
        raise CheckpointError(f"arch={arch} builds a timm {type(model).__name__}, not a plain VisionTransformer: "
                              "maelens converts only the ViTs it can represent exactly")
    why = []
    if model.cls_token is None:
        why.append("no CLS token")
    if getattr(model, "reg_token", None) is not None:
        why.append(f"{model.num_reg_tokens} register tokens")
    if model.pos_embed is None:
        why.append("no absolute position embedding")
    if getattr(model, "dynamic_img_pad", False) or getattr(model.patch_embed, "dynamic_img_pad", False):
        why.append("dynamic image padding")
    for part, module in (("norm_pre", model.norm_pre), ("patch_embed.norm", model.patch_embed.norm)):
        if not isinstance(module, nn.Identity):
            why.append(f"a {part} layer")
    if getattr(model, "attn_pool", None) is not None or model.global_pool not in ("token", "avg", ""):
        why.append(f"global_pool={model.global_pool!r}")
    if getattr(model, "pool_include_prefix", False) and model.global_pool == "avg":
        why.append("average pooling over the CLS token too")
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    if any(type(m) not in _LAYER_NORMS for m in model.modules() if "Norm" in type(m).__name__):
        why.append("normalisation layers other than LayerNorm")
    elif len({m.eps for m in norms}) > 1:
        why.append(f"LayerNorms with different eps {sorted({m.eps for m in norms})}")
    for i, blk in enumerate(model.blocks):
        problems = _block_problems(blk)
        if problems:
            why.append(f"{', '.join(problems)} (block {i})")
            break
    if why:
        raise CheckpointError(f"arch={arch} cannot be analysed as a maelens encoder: it has {', '.join(why)}")


def _block_problems(blk: nn.Module) -> list[str]:
    """What in one timm block a maelens block (timm ``Block`` with ``Attention``, ``Mlp``, exact GELU)
    cannot compute; LayerScale is allowed (it is folded)."""
    from timm.layers import Attention, LayerScale, Mlp
    from timm.models.vision_transformer import Block

    attn, mlp = getattr(blk, "attn", None), getattr(blk, "mlp", None)
    if type(blk) is not Block or type(attn) is not Attention or type(mlp) is not Mlp:
        return [f"a {type(blk).__name__} with {type(attn).__name__} and {type(mlp).__name__}"]
    problems = []
    if attn.num_heads * attn.head_dim != attn.qkv.in_features:
        problems.append(f"attention width {attn.num_heads * attn.head_dim} unlike the embedding's")
    if not (isinstance(attn.q_norm, nn.Identity) and isinstance(attn.k_norm, nn.Identity)):
        problems.append("q/k normalisation")
    if not isinstance(attn.norm, nn.Identity) or not isinstance(mlp.norm, nn.Identity):
        problems.append("normalisation inside attention or MLP")
    if getattr(attn, "gate", None) is not None:
        problems.append("gated attention")
    if type(mlp.act) is not nn.GELU or mlp.act.approximate != "none":
        problems.append(f"{type(mlp.act).__name__} activation (maelens blocks use exact GELU)")
    if not all(isinstance(ls, (nn.Identity, LayerScale)) for ls in (blk.ls1, blk.ls2)):
        problems.append("a layer scale other than timm's LayerScale")
    return problems




def _convert(model: nn.Module, name: str, notes: list[str]) -> TimmEncoder:
    """The maelens config, pooling and state of a representable timm VisionTransformer."""
    import timm

    blk = model.blocks[0]
    embed_dim = model.embed_dim
    patch = model.patch_embed.proj.kernel_size
    img = model.patch_embed.img_size
    if patch[0] != patch[1] or img[0] != img[1]:
        raise CheckpointError(f"arch=timm:{name}: non-square patches {patch} or input {img} are not supported")
    mean, std = _normalisation(model)
    config = ModelConfig(name=f"timm:{name}", img_size=img[0], patch_size=patch[0],
                         in_chans=model.patch_embed.proj.in_channels, embed_dim=embed_dim, depth=len(model.blocks),
                         num_heads=blk.attn.num_heads, decoder_depth=0, mlp_ratio=blk.mlp.fc1.out_features / embed_dim,
                         qkv_bias=blk.attn.qkv.bias is not None, layer_norm_eps=blk.norm1.eps,
                         norm_mean=mean, norm_std=std)
    head = None
    if model.global_pool in ("token", "avg"):
        head = EncoderHead(pool="cls" if model.global_pool == "token" else "avg",
                           final_norm=not isinstance(model.norm, nn.Identity),
                           fc_norm=not isinstance(model.fc_norm, nn.Identity))
    state = _maelens_state(model, notes)
    cfg_source = f"timm {name} (timm {timm.__version__})"
    provenance = {
        "architecture": cfg_source, "img_size": "pos_embed shape", "widths and depths": cfg_source,
        "num_heads": cfg_source, "layer_norm_eps": cfg_source, "norm_pix_loss": "not applicable (no decoder)",
        "normalisation": f"timm pretrained_cfg of {name}: mean {list(mean)}, std {list(std)}",
        "pooling": (f"timm global_pool={model.global_pool!r}: {head.describe()}" if head is not None
                    else "timm global_pool='': none (features default to the mean of the patch tokens)"),
    }
    return TimmEncoder(config, head, state, notes, provenance)


def _normalisation(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Input mean/std of the model's pretrained config (ImageNet's when it states none)."""
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    cfg = getattr(model, "pretrained_cfg", None) or {}
    return tuple(cfg.get("mean", IMAGENET_DEFAULT_MEAN)), tuple(cfg.get("std", IMAGENET_DEFAULT_STD))


def _maelens_state(model: nn.Module, notes: list[str]) -> dict[str, torch.Tensor]:
    """timm's tensors under maelens names (the same for this structure), made exact where maelens's module
    differs: LayerScale folded into ``attn.proj`` / ``mlp.fc2``, absent biases as zeros, a CLS row of zeros
    prepended to a table without one, ``head`` (an Identity here) dropped."""
    from timm.layers import LayerScale

    state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    if model.no_embed_class:
        pos = state["pos_embed"]
        # the CLS token receives no position in timm: a zero row in maelens's table
        state["pos_embed"] = torch.cat([torch.zeros_like(pos[:, :1]), pos], dim=1)
        notes.append("position table without a CLS row (no_embed_class): a zero CLS row prepended")
    folded = 0
    for i, blk in enumerate(model.blocks):
        for number, (ls, linear) in enumerate(((blk.ls1, "attn.proj"), (blk.ls2, "mlp.fc2")), start=1):
            if isinstance(ls, LayerScale):
                # gamma * (W x + b) = (gamma W) x + gamma b
                key, gamma = f"blocks.{i}.{linear}", ls.gamma.detach().cpu()
                state[f"{key}.weight"] = state[f"{key}.weight"] * gamma[:, None]
                if f"{key}.bias" in state:
                    state[f"{key}.bias"] = state[f"{key}.bias"] * gamma
                del state[f"blocks.{i}.ls{number}.gamma"]
                folded += 1
    # maelens's linears carry biases (qkv's is a config option): an absent bias is a zero bias
    biased = re.compile(r"^(patch_embed\.proj|blocks\.\d+\.(attn\.proj|mlp\.fc1|mlp\.fc2))$")
    zeros = [name for name, m in model.named_modules() if biased.match(name) and getattr(m, "bias", 0) is None]
    for name in zeros:
        state[f"{name}.bias"] = torch.zeros(state[f"{name}.weight"].shape[0], dtype=state[f"{name}.weight"].dtype)
    if folded:
        notes.append(f"LayerScale folded into {folded} projection(s) (gamma W, gamma b)")
    if zeros:
        notes.append(f"{len(zeros)} absent bias(es) loaded as zeros ({name_list(zeros)})")
    return {k: v for k, v in state.items() if not k.startswith("head.")}


def _check_equal(model: nn.Module, encoder: TimmEncoder, arch: str) -> None:
    """Run timm's ``forward_features`` and the converted encoder on one random image; refuse the
    conversion (a structure this module failed to detect) unless they agree, and record the difference."""
    c = encoder.config
    converted = build_model(c, encoder.state, arch, [], head=encoder.head).eval()
    x = torch.randn(1, c.in_chans, c.img_size, c.img_size, generator=torch.Generator().manual_seed(0))
    device = next(model.parameters()).device  # a model in hand may live on a GPU; the converted one is on the CPU
    with torch.no_grad():
        want = model.forward_features(x.to(device)).float().cpu()
        got = converted.encode(x, mask_ratio=0.0).tokens
    diff = math.inf
    finite = torch.isfinite(want)
    # weights loaded for inspection with NaN or inf (allow_nonfinite): compare where timm's output is finite
    if got.shape == want.shape and torch.equal(finite, torch.isfinite(got)):
        scale = max(want[finite].abs().max().item(), 1e-12) if finite.any() else 1.0
        diff = (got - want)[finite].abs().max().item() / scale if finite.any() else 0.0
    if not diff <= CHECK_TOLERANCE:
        raise CheckpointError(f"arch={arch}: the converted encoder differs from timm's forward_features "
                              f"(max relative difference {diff:.3g}): this structure is not supported")
    encoder.provenance["conversion"] = (f"checked against timm forward_features on a random input: max relative "
                                        f"difference {diff:.2g}")


__all__ = ["TIMM_PREFIX", "TimmEncoder", "convert_timm_vit", "key_mismatch", "load_timm_encoder", "timm_name"]
