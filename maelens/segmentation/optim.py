"""Optimizers of the fine-tuning: AdamW or SGD with MAE's weight-decay groups and, optionally, MAE's
layer-wise lr decay for the pretrained encoder (He et al. 2022, ``util/lr_decay.py``: block i of a depth-D
encoder gets ``decay ** (D + 1 - (i + 1))`` of the lr, the patch embedding ``decay ** (D + 1)``, the final
norm and the segmentation decoder the full lr)."""

from __future__ import annotations

import torch
from torch import nn

from ..choices import FINETUNE_OPTIMIZERS as OPTIMIZERS
from ..errors import ConfigError

#: Exempt from weight decay beside 1-D tensors and biases: the ViT's ``no_weight_decay()`` list that MAE's
#: fine-tuning passes to ``param_groups_lrd`` (CLS token, position table) and Segmenter's class embeddings.
NO_DECAY_SEGMENTER = ("cls_token", "pos_embed", "cls_emb")


def layer_id(name: str, depth: int) -> int:
    """MAE's ``get_layer_id_for_vit`` for a segmenter parameter: 0 for the patch embedding and the CLS /
    position tokens, i + 1 for encoder block i, ``depth + 1`` for everything after (norm, decoder)."""
    if not name.startswith("encoder."):
        return depth + 1
    rest = name[len("encoder."):]
    if rest in ("cls_token", "pos_embed") or rest.startswith("patch_embed."):
        return 0
    if rest.startswith("blocks."):
        return int(rest.split(".")[1]) + 1
    return depth + 1


def param_groups(model: nn.Module, weight_decay: float, layer_decay: float | None, depth: int) -> list[dict]:
    """Trainable parameters grouped by (decayed or not, lr scale); ``lr_scale`` is read by
    :func:`maelens.train.schedule.set_lr`. Biases, norms, tokens and class embeddings are not decayed."""
    groups: dict[tuple[bool, int], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        exempt = param.ndim <= 1 or name.endswith(".bias") or name.split(".")[-1] in NO_DECAY_SEGMENTER
        layer = layer_id(name, depth) if layer_decay is not None else depth + 1
        scale = layer_decay ** (depth + 1 - layer) if layer_decay is not None else 1.0
        group = groups.setdefault((exempt, layer), {"params": [], "weight_decay": 0.0 if exempt else weight_decay,
                                                    "lr_scale": scale})
        group["params"].append(param)
    return [groups[k] for k in sorted(groups)]


def build_finetune_optimizer(model: nn.Module, kind: str, *, lr: float, weight_decay: float,
                             layer_decay: float | None, depth: int, betas: tuple[float, float] = (0.9, 0.999),
                             momentum: float = 0.9) -> torch.optim.Optimizer:
    """AdamW (MAE fine-tuning) or SGD with momentum (Segmenter's recipe) over :func:`param_groups`."""
    groups = param_groups(model, weight_decay, layer_decay, depth)
    if kind == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas)
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {kind!r}")

__all__ = ["NO_DECAY_SEGMENTER", "OPTIMIZERS", "build_finetune_optimizer", "layer_id", "param_groups"]
