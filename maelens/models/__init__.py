"""MAE architecture, masking samplers, losses and presets."""

from __future__ import annotations

from typing import Any

from .mae import EncoderOutput, MaskedAutoencoderViT, set_fused_attention
from .masking import MASKINGS, MaskIds, ids_from_noise, sample_mask, sample_noise
from .presets import PRESETS, ModelConfig, get_config


def create_model(preset: str = "tiny", **overrides: Any) -> MaskedAutoencoderViT:
    """A freshly initialised MAE from a named preset, e.g. ``create_model("ipol64", norm_pix_loss=True)``."""
    return MaskedAutoencoderViT(get_config(preset, **overrides))


__all__ = [
    "EncoderOutput", "MASKINGS", "MaskIds", "MaskedAutoencoderViT", "ModelConfig", "PRESETS",
    "create_model", "get_config", "ids_from_noise", "sample_mask", "sample_noise", "set_fused_attention",
]
