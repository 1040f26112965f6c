"""A freshly initialised MAE from a preset's name."""

from __future__ import annotations

from typing import Any

from .mae import MaskedAutoencoderViT
from .presets import get_config


def create_model(preset: str = "tiny", **overrides: Any) -> MaskedAutoencoderViT:
    """A freshly initialised MAE from a named preset, e.g. ``create_model("ipol64", norm_pix_loss=True)``."""
    return MaskedAutoencoderViT(get_config(preset, **overrides))


__all__ = ["create_model"]
