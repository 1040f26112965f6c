"""AdamW with MAE's two parameter groups: weight decay on weight matrices only."""

from __future__ import annotations

import torch
from torch import nn

NO_DECAY_NAMES = ("cls_token", "mask_token", "pos_embed", "decoder_pos_embed")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups of trainable parameters: decayed (matrices, convolution kernels) and not decayed
    (biases, LayerNorm weights, any 1-D tensor, and the CLS / mask tokens, as timm's ViT exempts)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        exempt = param.ndim <= 1 or name.endswith(".bias") or name.split(".")[-1] in NO_DECAY_NAMES
        (no_decay if exempt else decay).append(param)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


def build_optimizer(model: nn.Module, *, lr: float, weight_decay: float,
                    betas: tuple[float, float] = (0.9, 0.95)) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups` (MAE pretraining: betas (0.9, 0.95), weight decay 0.05)."""
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=betas)
