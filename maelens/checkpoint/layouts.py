"""Key layouts of the supported checkpoint formats and the mapping of each onto the official
facebookresearch/mae parameter names used by :class:`maelens.models.MaskedAutoencoderViT`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import CheckpointError

#: Format names returned by :func:`maelens.checkpoint.detect_format`, with a description each.
FORMATS = {
    "maelens": "maelens checkpoint",
    "official": "facebookresearch/mae checkpoint",
    "huggingface": "Hugging Face ViTMAE weights",
    "encoder-only": "encoder-only ViT weights, timm .mae or MAE pretrain release style",
}
#: Key prefixes left by DistributedDataParallel and torch.compile wrappers.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
#: Classifier parts of fine-tuned / timm encoders that an MAE has no use for.
IGNORED_PREFIXES = ("head.", "fc_norm.")


@dataclass
class Layout:
    """A classified file: its ``format``, weights under official names, and what else it held."""

    format: str
    state: dict[str, torch.Tensor]
    rest: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def classify(obj: Any, where: str) -> Layout:
    """Recognise the layout of a loaded checkpoint object and rename its weights to official names."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{where} is not a checkpoint: it holds a {type(obj).__name__}, not a dict of tensors")
    if "maelens_version" in obj or _has_maelens_config(obj):
        state = _state_dict(obj, "model", where)
        return Layout("maelens", strip_wrappers(state), _without(obj, "model"))
    for key in ("model", "state_dict"):
        if isinstance(obj.get(key), dict) and obj[key] and _all_tensors(obj[key]):
            state, rest = obj[key], _without(obj, key)
            break
    else:
        if obj and _all_tensors(obj):
            state, rest = obj, {}
        else:
            raise CheckpointError(f"{where} has an unknown checkpoint format (keys seen: {_few(obj)})")
    state = strip_wrappers(state)
    notes: list[str] = []
    if is_hf_layout(state):
        state = hf_to_official(state, where)
        fmt = "huggingface"
    else:
        fmt = "official" if "decoder_embed.weight" in state else "encoder-only"
    if "patch_embed.proj.weight" not in state or not any(k.startswith("blocks.") for k in state):
        raise CheckpointError(f"{where} has an unknown checkpoint format: no ViT patch embedding or blocks "
                              f"(keys seen: {_few(state)})")
    ignored = sorted(k for k in state if k.startswith(IGNORED_PREFIXES))
    if ignored:
        notes.append(f"ignored classifier tensors {', '.join(ignored)}")
        state = {k: v for k, v in state.items() if k not in ignored}
    return Layout(fmt, state, rest, notes)


def _has_maelens_config(obj: dict) -> bool:
    return isinstance(obj.get("config"), dict) and "embed_dim" in obj["config"] and isinstance(obj.get("model"), dict)


def _state_dict(obj: dict, key: str, where: str) -> dict[str, torch.Tensor]:
    state = obj.get(key)
    if not isinstance(state, dict) or not _all_tensors(state):
        raise CheckpointError(f"{where} is a maelens checkpoint without a '{key}' dict of tensors")
    return state


def _all_tensors(d: dict) -> bool:
    return all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in d.items())


def _without(obj: dict, key: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != key}


def _few(d: dict, n: int = 5) -> str:
    keys = [str(k) for k in list(d)[:n]]
    more = f", … ({len(d)} in all)" if len(d) > n else ""
    return (", ".join(keys) + more) if keys else "none"


def strip_wrappers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop ``module.`` / ``_orig_mod.`` prefixes that wrapped models add to every key."""
    out = {}
    for key, value in state.items():
        while key.startswith(WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        out[key] = value
    return out


# ---- Hugging Face ViTMAE ---------------------------------------------------------------------
# transformers' ViTMAEForPreTraining, in the three namings its files come in:
#   4.x (hub files such as facebook/vit-mae-base): ``vit.encoder.layer.{i}`` and
#       ``decoder.decoder_layers.{i}``, each with ``attention.attention.{query,key,value}``,
#       ``attention.output.dense``, ``intermediate.dense``, ``output.dense``;
#   5.x in memory (``torch.save(model.state_dict())``): ``vit.layers.{i}`` with
#       ``attention.{q,k,v,o}_proj`` and ``mlp.fc1`` / ``mlp.fc2``;
#   5.x ``save_pretrained``: the 4.x names, except decoder layers as ``decoder.decoder_encoder.layer.{i}``.
# Around the layers: ``vit.embeddings.{cls_token, position_embeddings, patch_embeddings.projection}``,
# ``vit.layernorm`` and ``decoder.{decoder_embed, mask_token, decoder_pos_embed, decoder_norm,
# decoder_pred}``. ViTMAEModel saves the encoder without the ``vit.`` prefix.
_HF_LAYERS = re.compile(
    r"^(?:vit\.(?:encoder\.layer|layers)|decoder\.(decoder)_(?:layers|encoder\.layer))\.(\d+)\.(.*)$"
)
_HF_PREFIXES = [
    ("vit.embeddings.cls_token", "cls_token"),
    ("vit.embeddings.position_embeddings", "pos_embed"),
    ("vit.embeddings.patch_embeddings.projection.", "patch_embed.proj."),
    ("vit.layernorm.", "norm."),
    ("decoder.", ""),  # decoder_embed, mask_token, decoder_pos_embed, decoder_norm, decoder_pred
]
# Inside a layer; ``attention.output.dense`` must be tried before ``output.dense``.
_HF_LAYER = [
    ("attention.output.dense.", "attn.proj."),
    ("attention.o_proj.", "attn.proj."),
    ("layernorm_before.", "norm1."),
    ("layernorm_after.", "norm2."),
    ("intermediate.dense.", "mlp.fc1."),
    ("output.dense.", "mlp.fc2."),
]
_HF_QKV = re.compile(r"^(.*)\.attention\.(?:attention\.(query|key|value)|([qkv])_proj)\.(weight|bias)$")
_HF_BASE_PREFIXES = ("embeddings.", "encoder.layer.", "layers.", "layernorm.")


def is_hf_layout(state: dict[str, torch.Tensor]) -> bool:
    """True for transformers ViTMAE key names (with or without the ``vit.`` prefix)."""
    return any(k.startswith(("vit.embeddings.", "embeddings.patch_embeddings.", "decoder.decoder_layers."))
               for k in state)


def hf_to_official(state: dict[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    """Rename ViTMAE keys to official MAE names; separate query/key/value become one ``attn.qkv``."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if key.startswith(_HF_BASE_PREFIXES):
            key = "vit." + key
        key = _rename_hf(key)
        m = _HF_QKV.match(key)
        if m:
            part = m.group(2) or {"q": "query", "k": "key", "v": "value"}[m.group(3)]
            qkv.setdefault((m.group(1), m.group(4)), {})[part] = value
        else:
            out[key] = value
    for (block, kind), parts in qkv.items():
        if set(parts) != {"query", "key", "value"}:
            raise CheckpointError(f"{where}: {block} has attention {', '.join(sorted(parts))} {kind} "
                                  "but not all of query/key/value")
        out[f"{block}.attn.qkv.{kind}"] = torch.cat([parts["query"], parts["key"], parts["value"]], dim=0)
    return out


def _rename_hf(key: str) -> str:
    m = _HF_LAYERS.match(key)
    if m:
        blocks = "decoder_blocks" if m.group(1) else "blocks"
        return f"{blocks}.{m.group(2)}.{_rename_hf_layer(m.group(3))}"
    for old, new in _HF_PREFIXES:
        if key.startswith(old):
            return new + key[len(old):]
    return key


def _rename_hf_layer(tail: str) -> str:
    for old, new in _HF_LAYER:
        if tail.startswith(old):
            return new + tail[len(old):]
    return tail
