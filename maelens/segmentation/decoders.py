"""The two decoders of Segmenter (Strudel et al. 2021, sec. 3.2): patch tokens (B, L, D) of the encoder
-> class maps (B, K, h, w) on the patch grid; the segmenter upsamples them bilinearly to the image.

- ``linear``: a point-wise linear layer maps each patch token to K class logits (Segmenter's
  ``DecoderLinear``);
- ``mask``: the mask transformer (Segmenter's ``MaskTransformer``): K learned class embeddings are
  appended to the projected patch tokens, a few transformer layers process them jointly, and the masks
  are the scalar products of the L2-normalised patch embeddings with the L2-normalised class embeddings,
  followed by a LayerNorm over the classes (as in the reference code).
"""

from __future__ import annotations

import torch
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block
from torch import nn

from ..choices import DECODERS
from ..errors import ConfigError


def _init_segmenter(m: nn.Module) -> None:
    """Segmenter's ``init_weights``: truncated normal (std 0.02) linears with zero bias, unit LayerNorms."""
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.constant_(m.bias, 0)
    elif isinstance(m, nn.LayerNorm):
        nn.init.constant_(m.bias, 0)
        nn.init.constant_(m.weight, 1.0)


def _to_grid(x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, h*w, K) -> (B, K, h, w)."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *grid)


class LinearDecoder(nn.Module):
    """Patch tokens (B, L, D) -> class logits (B, K, h, w) by one linear layer."""

    def __init__(self, embed_dim: int, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.head = nn.Linear(embed_dim, num_classes)
        self.apply(_init_segmenter)

    def forward(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        return _to_grid(self.head(tokens), grid)


class MaskTransformer(nn.Module):
    """Segmenter's mask transformer: ``depth`` transformer layers of width ``dim`` over the patch tokens
    and one learned embedding per class; masks = normalised patch embeddings x normalised class embeddings.

    Defaults follow the reference: 2 layers, width and heads those of the encoder, MLP ratio 4.
    """

    def __init__(self, embed_dim: int, num_classes: int, *, dim: int | None = None, depth: int = 2,
                 num_heads: int = 4, mlp_ratio: float = 4.0):
        super().__init__()
        dim = dim or embed_dim
        self.num_classes = num_classes
        self.scale = dim ** -0.5
        self.proj_dec = nn.Linear(embed_dim, dim)
        self.blocks = nn.ModuleList([Block(dim, num_heads, mlp_ratio, qkv_bias=True) for _ in range(depth)])
        self.decoder_norm = nn.LayerNorm(dim)
        self.proj_patch = nn.Parameter(self.scale * torch.randn(dim, dim))
        self.proj_classes = nn.Parameter(self.scale * torch.randn(dim, dim))
        self.mask_norm = nn.LayerNorm(num_classes)
        self.cls_emb = nn.Parameter(torch.randn(1, num_classes, dim))
        self.apply(_init_segmenter)
        trunc_normal_(self.cls_emb, std=0.02)

    def embeddings(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, D) patch tokens -> L2-normalised patch embeddings (B, L, d) and class embeddings (B, K, d)."""
        # project to the decoder width, append the class embeddings, run the layers jointly
        x = self.proj_dec(tokens)
        x = torch.cat([x, self.cls_emb.expand(x.shape[0], -1, -1)], dim=1)
        for blk in self.blocks:
            x = blk(x)
        x = self.decoder_norm(x)
        # split, project each part, L2-normalise
        patches = x[:, :-self.num_classes] @ self.proj_patch
        classes = x[:, -self.num_classes:] @ self.proj_classes
        return patches / patches.norm(dim=-1, keepdim=True), classes / classes.norm(dim=-1, keepdim=True)

    def masks(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L, K) scalar products <patch_l, class_k> of the normalised embeddings (cosines, in [-1, 1])."""
        patches, classes = self.embeddings(tokens)
        return patches @ classes.transpose(1, 2)

    def forward(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        return _to_grid(self.mask_norm(self.masks(tokens)), grid)


def build_decoder(kind: str, embed_dim: int, num_classes: int, num_heads: int) -> nn.Module:
    """``linear`` or ``mask`` decoder for an encoder of width ``embed_dim`` with ``num_heads`` heads."""
    if kind == "linear":
        return LinearDecoder(embed_dim, num_classes)
    if kind == "mask":
        return MaskTransformer(embed_dim, num_classes, num_heads=num_heads)
    raise ConfigError(f"decoder must be one of {', '.join(DECODERS)}, got {kind!r}")

__all__ = ["DECODERS", "LinearDecoder", "MaskTransformer", "build_decoder"]
