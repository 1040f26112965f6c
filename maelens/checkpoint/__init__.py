"""Checkpoints: maelens's own format (atomic, ``weights_only``-loadable) and loading of official
facebookresearch/mae (pretrained, visualize, training, fine-tuned and linear-probe files), Hugging Face
ViTMAE and encoder-only ViT weights, format detected automatically; timm Vision Transformers by name
(:mod:`.timm_vit`); other input sizes (:mod:`.resize`)."""

from __future__ import annotations

from .infer import infer_config, match_preset
from .layouts import FORMATS
from .rng import capture_rng_state, restore_rng_state
from .store import (
    LoadedCheckpoint,
    build_model,
    detect_format,
    load_checkpoint,
    load_model,
    save_checkpoint,
    unwrap_model,
)

__all__ = [
    "FORMATS", "LoadedCheckpoint", "build_model", "capture_rng_state", "detect_format", "infer_config",
    "load_checkpoint", "load_model", "match_preset", "restore_rng_state", "save_checkpoint", "unwrap_model",
]
