"""SimCLR (Chen et al. 2020), the contrastive baseline of IPOL sec. 6 (Table 3, Fig. 14): a ResNet backbone
f whose pooled output h = f(x) is the representation, and a projection head g (Linear -> ReLU -> Linear)
whose output z = g(h) enters the NT-Xent loss (:mod:`maelens.models.contrastive`). As in SimCLR, the head
is used for training only; features for evaluation are h (:meth:`SimCLR.features`).

The backbone is torchvision's architecture built without pretrained weights; see
:mod:`maelens.models.simclr_config` for why the paper's model is a ResNet-18.
"""

from __future__ import annotations

import torch
from torch import nn

from .simclr_config import SimCLRConfig


def build_backbone(config: SimCLRConfig) -> nn.Module:
    """torchvision's ``resnet18``/``resnet50`` (``weights=None``) with ``fc`` replaced by the identity, so its
    output is the global-average-pooled feature (B, feature_dim); ``stem="cifar"`` swaps the 7x7 stride-2
    convolution for a 3x3 stride-1 one and drops the max-pool (SimCLR's CIFAR-10 variant)."""
    from torchvision import models  # imported here: only building a SimCLR model needs torchvision

    net = getattr(models, config.backbone)(weights=None)
    if config.stem == "cifar":
        net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")  # as torchvision's init
        net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    return net


class SimCLR(nn.Module):
    """Backbone + projection head. ``forward(imgs)`` returns the projections z (B, proj_dim) that NT-Xent
    compares; :meth:`features` returns the backbone representation h (B, feature_dim) used for evaluation.

    ``imgs``: (B, 3, H, W) normalised with ``config.norm_mean``/``norm_std``.
    """

    method = "simclr"

    def __init__(self, config: SimCLRConfig):
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config)
        self.projector = nn.Sequential(
            nn.Linear(config.feature_dim, config.proj_hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(config.proj_hidden_dim, config.proj_dim),
        )

    def num_trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def features(self, imgs: torch.Tensor) -> torch.Tensor:
        """h = f(x): the pooled backbone output (B, feature_dim), the representation SimCLR evaluates."""
        return self.backbone(imgs)

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        """z = g(f(x)): the projections (B, proj_dim) the contrastive loss is computed on."""
        return self.projector(self.backbone(imgs))


def create_simclr(preset: str = "simclr-r18", **overrides) -> SimCLR:
    """A freshly initialised SimCLR model from a named preset, e.g. ``create_simclr(stem="cifar")``."""
    from .simclr_config import get_simclr_config

    return SimCLR(get_simclr_config(preset, **overrides))


__all__ = ["SimCLR", "build_backbone", "create_simclr"]
