"""Key layouts of the supported checkpoint formats and the mapping of each onto the official
facebookresearch/mae parameter names used by :class:`maelens.models.MaskedAutoencoderViT`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import CheckpointError
from ..models.mae import EncoderHead

#: Format names returned by :func:`maelens.checkpoint.detect_format`, with a description each.
FORMATS = {
    "maelens": "maelens checkpoint",
    "official": "facebookresearch/mae checkpoint",
    "huggingface": "Hugging Face ViTMAE weights",
    "encoder-only": "encoder-only ViT weights: MAE pretrain release, official fine-tuned or linear-probe file, "
                    "timm style",
    "timm": "timm Vision Transformer (--arch timm:NAME), converted exactly to a maelens encoder",
}
#: Key prefixes left by DistributedDataParallel and torch.compile wrappers: removed from every key.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
#: Prefixes of a ViT held inside another model (a detection backbone, an encoder field, a Lightning
#: ``model``): removed only when every key has it and what remains is a ViT.
HOLDER_PREFIXES = ("backbone.", "encoder.", "model.")


@dataclass
class Layout:
    """A classified file: its ``format``, weights under official names, and what else it held."""

    format: str
    state: dict[str, torch.Tensor]
    rest: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: the pooling of a fine-tuned encoder (official ``main_finetune`` / ``main_linprobe``), else None
    head: EncoderHead | None = None
    #: ``fine-tuned`` or ``linear-probe`` when the file holds a classifier, else None
    release: str | None = None
    provenance: dict[str, str] = field(default_factory=dict)


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
    notes: list[str] = []
    state = strip_prefixes(state, notes)
    if is_hf_layout(state):
        state = hf_to_official(state, where)
        fmt = "huggingface"
        pooler = [k for k in state if k.startswith("pooler.")]
        if pooler:  # transformers' ViTModel: tanh(W cls + b), a head like a classifier's
            notes.append("ViTModel pooler (tanh of a linear map of the CLS token) not loaded: maelens analyses "
                         "the encoder")
            state = {k: v for k, v in state.items() if k not in pooler}
    else:
        fmt = "official" if "decoder_embed.weight" in state else "encoder-only"
    if not looks_like_vit(state):
        raise CheckpointError(f"{where} has an unknown checkpoint format: no ViT patch embedding or blocks "
                              f"(keys seen: {_few(state)})")
    state, head, release, provenance = split_classifier(state, notes)
    return Layout(fmt, state, rest, notes, head, release, provenance)


def looks_like_vit(state: dict[str, torch.Tensor]) -> bool:
    """True when the keys hold a ViT under official MAE / timm names (patch embedding and blocks)."""
    return "patch_embed.proj.weight" in state and any(k.startswith("blocks.") for k in state)


def split_classifier(state: dict[str, torch.Tensor], notes: list[str]
                     ) -> tuple[dict[str, torch.Tensor], EncoderHead | None, str | None, dict[str, str]]:
    """Separate the classifier of a fine-tuned encoder and read its pooling from the keys:
    ``(state without head.*, pooling, release, provenance)``.

    facebookresearch/mae ``main_finetune.py`` / ``main_linprobe.py`` with ``--global_pool`` replace ``norm``
    by ``fc_norm`` (the mean of the patch tokens is normalised); without it they keep ``norm`` and the
    classifier reads the CLS token. The linear probe's head is ``Sequential(BatchNorm1d(affine=False),
    Linear)``, keys ``head.0.*`` / ``head.1.*``. timm encoders saved with ``global_pool='avg'`` hold
    ``fc_norm`` too (without a head when ``num_classes=0``).
    """
    head_keys = sorted(k for k in state if k.startswith("head."))
    fc_norm = "fc_norm.weight" in state
    if not head_keys and not fc_norm:
        return state, None, None, {}
    linear_probe = any(k.startswith(("head.0.", "head.1.")) for k in head_keys)
    release = ("linear-probe" if linear_probe else "fine-tuned") if head_keys else None
    head = EncoderHead(pool="avg" if fc_norm else "cls", final_norm="norm.weight" in state or not fc_norm,
                       fc_norm=fc_norm)
    if fc_norm:
        found = "fc_norm.* present" + ("" if head.final_norm else ", no norm.*")
        origin = f"{found}: global average pooling (official --global_pool)"
    else:
        origin = "head.* present, no fc_norm.*: CLS token (official fine-tuning without --global_pool)"
    if head_keys:
        notes.append(f"{release} classifier not loaded ({_classifier(state, head_keys)}): maelens analyses the "
                     f"encoder, whose pooled feature is the {head.describe()}")
    return ({k: v for k, v in state.items() if k not in head_keys}, head, release,
            {"pooling": f"{origin}: {head.describe()}"})


def _classifier(state: dict[str, torch.Tensor], keys: list[str]) -> str:
    """``Linear 768->1000`` or ``BatchNorm1d + Linear 768->1000`` from the head tensors' shapes."""
    weight = next((k for k in keys if k.endswith(".weight") and state[k].ndim == 2), None)
    if weight is None:
        return ", ".join(keys)
    out_dim, in_dim = state[weight].shape
    batch_norm = "BatchNorm1d + " if any(k.startswith("head.0.") for k in keys) else ""
    return f"{batch_norm}Linear {in_dim}->{out_dim}"


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


def name_list(names: list[str], n: int = 4) -> str:
    """``a, b, c, d and 3 more``: the first ``n`` names of a list shown in an error message."""
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def _few(d: dict, n: int = 5) -> str:
    keys = [str(k) for k in list(d)[:n]]
    more = f", … ({len(d)} in all)" if len(d) > n else ""
    return (", ".join(keys) + more) if keys else "none"


def strip_prefixes(state: dict[str, torch.Tensor], notes: list[str]) -> dict[str, torch.Tensor]:
    """Remove wrapper prefixes: ``module.`` / ``_orig_mod.`` from every key, then a holder prefix
    (:data:`HOLDER_PREFIXES`) shared by every key when what remains is a ViT; each removal is noted."""
    state = strip_wrappers(state)
    while state:
        prefix = next((p for p in HOLDER_PREFIXES if all(k.startswith(p) for k in state)), None)
        if prefix is None:
            return state
        inner = strip_wrappers({k[len(prefix):]: v for k, v in state.items()})
        if not (looks_like_vit(inner) or is_hf_layout(inner)):
            return state
        notes.append(f"prefix '{prefix}' removed from every tensor name")
        state = inner
    return state


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
    ("classifier.", "head."),  # ViTForImageClassification: a linear head on the CLS token after layernorm
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

__all__ = ["FORMATS", "HOLDER_PREFIXES", "Layout", "WRAPPER_PREFIXES", "classify", "hf_to_official",
    "is_hf_layout", "looks_like_vit", "name_list", "split_classifier", "strip_prefixes", "strip_wrappers"]
