"""Segmenter on an MAE encoder (Strudel et al. 2021; IPOL sec. 6 "Pre-training"): the MAE's ViT encoder
run on every patch (no masking, the final LayerNorm applied), a ``linear`` or ``mask`` decoder on the
patch tokens, and a bilinear upsampling of the class maps to the image.

The compared arms differ only in where the encoder's weights come from: :func:`segmenter_from_checkpoint`
copies them from any checkpoint maelens loads, :func:`segmenter_from_scratch` initialises the same
architecture as MAE does before pretraining.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..models.mae import MaskedAutoencoderViT
from ..models.presets import ModelConfig, get_config
from .decoders import DECODERS, build_decoder


def encoder_config(config: ModelConfig) -> ModelConfig:
    """The encoder-only version of an MAE architecture (no decoder weights are built); a CAE's encoder is an MAE
    encoder (:meth:`~maelens.models.cae_config.CAEConfig.encoder_config`)."""
    if hasattr(config, "encoder_config"):
        return config.encoder_config()
    return replace(config, decoder_depth=0)


def encoder_state(model: MaskedAutoencoderViT) -> dict[str, torch.Tensor]:
    """The encoder's tensors of an MAE (everything but the ``decoder_*`` and ``mask_token``) or CAE state dict."""
    whole = model.has_decoder or getattr(model, "method", "mae") == "cae"
    keys = set(MaskedAutoencoderViT(encoder_config(model.config)).state_dict()) if whole else None
    return {k: v for k, v in model.state_dict().items() if keys is None or k in keys}


class Segmenter(nn.Module):
    """``encoder`` (an encoder-only :class:`MaskedAutoencoderViT`) + ``decoder``: images (B, 3, H, W)
    normalised as the encoder's inputs -> class logits (B, K, H, W)."""

    def __init__(self, encoder_cfg: ModelConfig, num_classes: int, decoder: str = "linear"):
        super().__init__()
        if num_classes < 2:
            raise ConfigError(f"num_classes must be at least 2, got {num_classes!r}")
        if decoder not in DECODERS:
            raise ConfigError(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
        self.num_classes = int(num_classes)
        self.decoder_kind = decoder
        self.encoder = MaskedAutoencoderViT(encoder_config(encoder_cfg))
        c = self.encoder.config
        self.decoder = build_decoder(decoder, c.embed_dim, num_classes, c.num_heads)

    @property
    def config(self) -> ModelConfig:
        return self.encoder.config

    def patch_tokens(self, imgs: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, L, D): every patch in raster order, after the encoder's final norm."""
        b, length = imgs.shape[0], self.encoder.num_patches
        natural = torch.arange(length, device=imgs.device, dtype=torch.float32).expand(b, length)
        return self.encoder.encode(imgs, mask_ratio=0.0, noise=natural).patch_tokens

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        # encode all patches, decode to class maps on the patch grid, upsample to the image
        maps = self.decoder(self.patch_tokens(imgs), self.encoder.grid_size)
        return F.interpolate(maps, size=imgs.shape[-2:], mode="bilinear", align_corners=False)

    def describe(self) -> dict[str, Any]:
        """Plain record of the architecture (stored in segmentation checkpoints)."""
        return {"encoder": self.config.to_dict(), "num_classes": self.num_classes, "decoder": self.decoder_kind}

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> "Segmenter":
        return cls(ModelConfig.from_dict(description["encoder"]), int(description["num_classes"]),
                   str(description["decoder"]))


def segmenter_from_scratch(preset: str | ModelConfig, num_classes: int, decoder: str = "linear") -> Segmenter:
    """A segmenter whose encoder is freshly initialised (MAE's initialisation) with ``preset``'s architecture."""
    config = get_config(preset) if isinstance(preset, str) else preset
    return Segmenter(config, num_classes, decoder)


def segmenter_from_mae(mae: MaskedAutoencoderViT, num_classes: int, decoder: str = "linear") -> Segmenter:
    """A segmenter whose encoder holds exactly ``mae``'s encoder weights (its decoder is left out);
    the segmentation decoder is freshly initialised."""
    seg = Segmenter(mae.config, num_classes, decoder)
    seg.encoder.load_state_dict(encoder_state(mae), strict=True)
    return seg


def segmenter_from_checkpoint(path: Any, num_classes: int, decoder: str = "linear", **load_kwargs: Any) -> Segmenter:
    """:func:`segmenter_from_mae` on the model of any checkpoint :func:`maelens.checkpoint.load_checkpoint`
    reads (maelens runs, official MAE, Hugging Face ViTMAE, timm encoder weights)."""
    from ..checkpoint import load_checkpoint

    return segmenter_from_mae(load_checkpoint(path, "cpu", **load_kwargs).model, num_classes, decoder)

__all__ = ["Segmenter", "encoder_config", "encoder_state", "segmenter_from_checkpoint", "segmenter_from_mae",
    "segmenter_from_scratch"]
