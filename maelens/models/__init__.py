"""MAE architecture, masking samplers, losses and presets. Names load their module on first use
(:mod:`maelens._lazy`): ``maelens.models.presets`` and ``maelens.models.simclr_config`` import no torch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:
    from .factory import create_model
    from .mae import EncoderOutput, MaskedAutoencoderViT, set_fused_attention
    from .masking import MASKINGS, MaskIds, ids_from_noise, sample_mask, sample_noise
    from .presets import PRESETS, ModelConfig, get_config

_WHERE = {
    "EncoderOutput": "mae", "MaskedAutoencoderViT": "mae", "set_fused_attention": "mae",
    "MASKINGS": "masking", "MaskIds": "masking", "ids_from_noise": "masking", "sample_mask": "masking",
    "sample_noise": "masking", "PRESETS": "presets", "ModelConfig": "presets", "get_config": "presets",
    "create_model": "factory",
}
__getattr__ = lazy_names(__name__, _WHERE)
__all__ = [
    "EncoderOutput", "MASKINGS", "MaskIds", "MaskedAutoencoderViT", "ModelConfig", "PRESETS", "create_model",
    "get_config", "ids_from_noise", "sample_mask", "sample_noise", "set_fused_attention",
]
