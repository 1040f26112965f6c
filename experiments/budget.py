"""Training budgets of the MAE vs SimCLR comparison (IPOL Table 3), stated in optimizer steps, images
seen and floating-point operations.

The two methods are given the same steps and batch on the same images, so they see the same number of
source images; their FLOPs differ by architecture and are computed here from the architectures
themselves: torch's :class:`~torch.utils.flop_counter.FlopCounterMode` counts the matrix products and
convolutions of one training step (forward + backward; the MAE encodes the 25% visible patches and decodes
all of them, SimCLR runs two augmented views through the ResNet and the projection head). The MAE's
attention is counted with timm's explicit attention (the fused CPU kernel has no FLOP formula in torch:
it would count as 0). Element-wise operations, normalisations and the data augmentation are not counted
(a few percent of either).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from maelens.models import create_model, set_fused_attention
from maelens.models.contrastive import nt_xent_loss
from maelens.models.simclr import create_simclr

__all__ = ["Budget", "mae_step_flops", "simclr_step_flops"]


@dataclass(frozen=True)
class Budget:
    """One arm's training budget: ``steps`` of ``batch_size`` images (``images_seen`` in all) and the
    FLOPs that costs (``flops_per_image`` of one training step, forward + backward)."""

    method: str
    epochs: int
    steps: int
    batch_size: int
    images_seen: int
    flops_per_image: float

    @property
    def total_flops(self) -> float:
        return self.flops_per_image * self.images_seen

    def to_dict(self) -> dict:
        return {**asdict(self), "total_flops": self.total_flops}


def _count(step) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return float(counter.get_total_flops())


def mae_step_flops(preset: str, *, mask_ratio: float = 0.75, batch: int = 2) -> float:
    """FLOPs per image of one MAE training step (forward with ``mask_ratio`` of the patches removed, loss,
    backward) of a freshly built ``preset``."""
    model = create_model(preset)
    set_fused_attention(model, False)  # explicit q @ k^T and attn @ v, which the counter sees
    size = model.config.img_size
    imgs = torch.randn(batch, 3, size, size)

    def step() -> None:
        loss = model(imgs, mask_ratio, generator=torch.Generator().manual_seed(0))[0]
        loss.backward()

    return _count(step) / batch


def simclr_step_flops(preset: str = "simclr-r18", *, img_size: int, batch: int = 2) -> float:
    """FLOPs per source image of one SimCLR training step (two views of each image through backbone and
    projection head, NT-Xent, backward) of a freshly built ``preset`` at ``img_size``."""
    model = create_simclr(preset, img_size=img_size)
    views = torch.randn(2 * batch, 3, img_size, img_size)

    def step() -> None:
        z_a, z_b = model(views).chunk(2)
        nt_xent_loss(z_a, z_b, model.config.temperature).backward()

    return _count(step) / batch
