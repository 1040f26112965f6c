"""AdamW with the official MAE pretraining's two parameter groups.

facebookresearch/mae ``main_pretrain.py`` builds its optimizer with timm's ``add_weight_decay(model,
weight_decay)`` and an empty skip list: weight decay 0 for every 1-D tensor and every name ending in
``.bias`` (biases, LayerNorm weights), decay on everything else, the CLS and mask tokens included
(they are shaped (1, 1, D)); then ``AdamW(groups, lr, betas=(0.9, 0.95))``. That is maelens's default.
timm's ViT additionally exempts ``cls_token`` / ``mask_token`` / ``pos_embed`` (its ``no_weight_decay``);
``decay_tokens=False`` (``maelens train --no-decay-tokens``) gives that variant, which maelens used by
default before issue 18. The fixed sin-cos position tables are not trainable and are in no group.
"""

from __future__ import annotations

import torch
from torch import nn

#: Names timm's ViT exempts from weight decay; exempt here only with ``decay_tokens=False``.
TIMM_NO_DECAY_NAMES = ("cls_token", "mask_token", "pos_embed", "decoder_pos_embed")


def param_groups(model: nn.Module, weight_decay: float, *, decay_tokens: bool = True) -> list[dict]:
    """``[no-decay group, decay group]`` of the trainable parameters, as timm's ``add_weight_decay``
    orders them: no decay for 1-D tensors and ``.bias`` names (the official rule), and also for the
    CLS / mask tokens and learned position tables when ``decay_tokens`` is False (timm's ViT rule)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        exempt = param.ndim <= 1 or name.endswith(".bias")
        if not decay_tokens and name.split(".")[-1] in TIMM_NO_DECAY_NAMES:
            exempt = True
        (no_decay if exempt else decay).append(param)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


def build_optimizer(model: nn.Module, *, lr: float, weight_decay: float,
                    betas: tuple[float, float] = (0.9, 0.95), decay_tokens: bool = True) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`, as the official MAE pretraining (betas (0.9, 0.95); maelens's
    weight decay default 0.05 is the official recipe's value)."""
    groups = param_groups(model, weight_decay, decay_tokens=decay_tokens)
    # torch's fused kernel (one pass over all tensors) where it has one: the same update as the per-tensor loop
    # torch runs by default on the CPU, several percent faster per step on small models (issue 23)
    fused = all(p.device.type in ("cpu", "cuda") for group in groups for p in group["params"])
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused)

__all__ = ["TIMM_NO_DECAY_NAMES", "build_optimizer", "param_groups"]
