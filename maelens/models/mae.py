"""Masked autoencoder with a ViT encoder and decoder (He et al. 2022), parameter-compatible with
the official facebookresearch/mae release: same module names, fixed sin-cos position embeddings,
``patchify`` in (h, w, p, q, c) order and ``forward(imgs, mask_ratio, noise) -> (loss, pred, mask)``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Block
from torch import nn

from ..choices import HEAD_POOLINGS
from ..data.normalization import denormalize
from ..errors import MaelensError
from .losses import YCBCR_WEIGHTS, masked_mean, normalize_patches, patch_errors, rgb_to_ycbcr
from .masking import MaskIds, ids_from_noise, num_kept, sample_noise
from .pos_embed import sincos_2d
from .presets import YCBCR_TARGETS, ModelConfig

#: How a fine-tuned encoder pools its tokens into one feature: mean of the patch tokens, or the CLS token.


@dataclass(frozen=True)
class EncoderHead:
    """How a fine-tuned or supervised encoder turns its tokens into the one feature its classifier was
    trained on: ``fc_norm(pool(norm(blocks(x))))``, as facebookresearch/mae ``models_vit.py`` and timm's
    ``VisionTransformer.forward_head(pre_logits=True)`` compute it.

    ``pool``: ``avg`` (mean of the patch tokens, CLS excluded) or ``cls``; ``final_norm``: whether the
    LayerNorm ``norm`` normalises every token (the official ``--global_pool`` fine-tuning deletes it and
    normalises the pooled vector with ``fc_norm`` instead); ``fc_norm``: a LayerNorm on the pooled vector.
    """

    pool: str
    final_norm: bool = True
    fc_norm: bool = False

    def __post_init__(self) -> None:
        if self.pool not in HEAD_POOLINGS:
            raise MaelensError(f"pool must be one of {', '.join(HEAD_POOLINGS)}, got {self.pool!r}")

    def describe(self) -> str:
        """One line saying how the feature is computed, for settings and ``maelens info``."""
        pooled = "mean of the patch tokens" if self.pool == "avg" else "CLS token"
        norm = " after the final norm" if self.final_norm else ""
        return f"{pooled}{norm}" + (", then fc_norm" if self.fc_norm else "")


@dataclass
class EncoderOutput:
    """Encoder result: ``tokens`` (B, 1+K, D) with CLS first; ``mask`` (B, L) 1 = removed;
    ``ids_keep`` (B, K) the patch index of each visible token; ``ids_restore`` (B, L)."""

    tokens: torch.Tensor
    mask: torch.Tensor
    ids_keep: torch.Tensor
    ids_restore: torch.Tensor

    @property
    def cls(self) -> torch.Tensor:
        return self.tokens[:, 0]

    @property
    def patch_tokens(self) -> torch.Tensor:
        return self.tokens[:, 1:]


class MaskedAutoencoderViT(nn.Module):
    """MAE with a ViT backbone; built from a :class:`ModelConfig` (``decoder_depth=0``: encoder only).

    ``head`` describes the pooling of a fine-tuned encoder (official ``main_finetune`` / ``main_linprobe``
    files, timm ViTs): without a final ``norm`` when ``head.final_norm`` is False, with an ``fc_norm`` when
    ``head.fc_norm``; :meth:`pool_features` then gives the feature its classifier was trained on. The
    classifier itself is not part of the model: maelens analyses encoders.
    """

    def __init__(self, config: ModelConfig, *, head: EncoderHead | None = None):
        super().__init__()
        self.config = config
        self.encoder_head = head
        norm_layer = partial(nn.LayerNorm, eps=config.layer_norm_eps)
        c = config
        self.patch_embed = PatchEmbed(c.img_size, c.patch_size, c.in_chans, c.embed_dim)
        num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, c.embed_dim), requires_grad=False)
        self.blocks = nn.ModuleList([
            Block(c.embed_dim, c.num_heads, c.mlp_ratio, qkv_bias=c.qkv_bias, norm_layer=norm_layer)
            for _ in range(c.depth)
        ])
        # a global-pool fine-tuned encoder has no final norm (official models_vit.py deletes it) ...
        self.norm = norm_layer(c.embed_dim) if head is None or head.final_norm else nn.Identity()
        # ... and normalises the pooled vector instead
        if head is not None and head.fc_norm:
            self.fc_norm = norm_layer(c.embed_dim)
        if c.has_decoder:
            self.decoder_embed = nn.Linear(c.embed_dim, c.decoder_embed_dim, bias=True)
            self.mask_token = nn.Parameter(torch.zeros(1, 1, c.decoder_embed_dim))
            self.decoder_pos_embed = nn.Parameter(
                torch.zeros(1, num_patches + 1, c.decoder_embed_dim), requires_grad=False
            )
            self.decoder_blocks = nn.ModuleList([
                Block(c.decoder_embed_dim, c.decoder_num_heads, c.mlp_ratio, qkv_bias=c.qkv_bias,
                      norm_layer=norm_layer)
                for _ in range(c.decoder_depth)
            ])
            self.decoder_norm = norm_layer(c.decoder_embed_dim)
            self.decoder_pred = nn.Linear(c.decoder_embed_dim, c.patch_size**2 * c.in_chans, bias=True)
        self.initialize_weights()

    # ---- construction -------------------------------------------------------------------
    def initialize_weights(self) -> None:
        """Sin-cos position tables, Xavier-uniform linears and patch projection, N(0, 0.02) tokens."""
        grid = self.config.grid_size
        self.pos_embed.data.copy_(torch.from_numpy(sincos_2d(self.config.embed_dim, grid)).unsqueeze(0))
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        if self.has_decoder:
            table = sincos_2d(self.config.decoder_embed_dim, grid)
            self.decoder_pos_embed.data.copy_(torch.from_numpy(table).unsqueeze(0))
            nn.init.normal_(self.mask_token, std=0.02)
        self.apply(self._init_module)

    @staticmethod
    def _init_module(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.bias, 0)
            nn.init.constant_(m.weight, 1.0)

    # ---- properties ---------------------------------------------------------------------
    @property
    def has_decoder(self) -> bool:
        return self.config.has_decoder

    @property
    def grid_size(self) -> tuple[int, int]:
        return self.config.grid_size

    @property
    def num_patches(self) -> int:
        return self.config.num_patches

    def num_trainable_parameters(self) -> int:
        """Trainable parameters (the fixed position tables are excluded, as in the paper's count)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    # ---- patches --------------------------------------------------------------------------
    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, L, p*p*C), patch pixels in (p, q, c) order."""
        p = self.config.patch_size
        b, ch, hh, ww = imgs.shape
        h, w = hh // p, ww // p
        x = imgs.reshape(b, ch, h, p, w, p)
        x = torch.einsum("nchpwq->nhwpqc", x)
        return x.reshape(b, h * w, p * p * ch)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, p*p*C) -> (B, C, H, W)."""
        p = self.config.patch_size
        ch = self.config.in_chans
        h, w = self.grid_size
        x = x.reshape(x.shape[0], h, w, p, p, ch)
        x = torch.einsum("nhwpqc->nchpwq", x)
        return x.reshape(x.shape[0], ch, h * p, w * p)

    # ---- masking ---------------------------------------------------------------------------
    def masking_noise(self, batch_size: int, mask_ratio: float, masking: str = "random",
                      generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> tuple[torch.Tensor, int]:
        """Noise (B, L) and visible count for a masking strategy (see :mod:`maelens.models.masking`)."""
        return sample_noise(masking, batch_size, self.grid_size, mask_ratio, generator, device)

    def random_masking(self, x: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None,
                       len_keep: int | None = None) -> tuple[torch.Tensor, MaskIds]:
        """Keep the ``len_keep`` tokens of (B, L, D) with the smallest noise (official MAE shuffle)."""
        b, length, d = x.shape
        if len_keep is None:
            len_keep = num_kept(length, mask_ratio)
        if noise is None:
            noise = torch.rand(b, length, device=x.device)
        if noise.shape != (b, length):
            raise MaelensError(f"noise must have shape ({b}, {length}), got {tuple(noise.shape)}")
        ids = ids_from_noise(noise.to(x.device), len_keep)
        kept = torch.gather(x, 1, ids.ids_keep.unsqueeze(-1).expand(-1, -1, d))
        return kept, ids

    # ---- encoder / decoder ------------------------------------------------------------------
    def _resolve_noise(self, imgs: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None,
                       masking: str, generator: torch.Generator | None) -> tuple[torch.Tensor | None, int | None]:
        if noise is not None:
            return noise, None
        if masking == "random" and generator is None and mask_ratio > 0:
            return None, None  # the official path: torch.rand on the images' device
        return self.masking_noise(imgs.shape[0], mask_ratio, masking, generator, imgs.device)

    def encode(self, imgs: torch.Tensor, mask_ratio: float = 0.75, noise: torch.Tensor | None = None,
               *, masking: str = "random", generator: torch.Generator | None = None,
               apply_norm: bool = True) -> EncoderOutput:
        """Run the encoder on the visible patches; ``mask_ratio=0`` keeps every patch in natural order.

        ``apply_norm=False`` returns the last block's output before the final LayerNorm.
        """
        noise, len_keep = self._resolve_noise(imgs, mask_ratio, noise, masking, generator)
        # embed patches: (B, C, H, W) -> (B, L, D)
        x = self.patch_embed(imgs)
        # masking: keep the (1 - mask_ratio) L patches with the smallest noise; length L -> K
        x, ids = self.random_masking(x, mask_ratio, noise, len_keep)
        # add each kept patch's position embedding (the CLS token's, row 0, is added below); the official code
        # adds before masking: the same sums, here on K tokens instead of L
        pos = self.pos_embed[:, 1:, :].expand(x.shape[0], -1, -1)
        x = x + torch.gather(pos, 1, ids.ids_keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        # prepend the CLS token with its position embedding: (B, 1 + K, D)
        cls_token = self.cls_token + self.pos_embed[:, :1, :]
        x = torch.cat([cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        # the Transformer blocks see the visible patches only
        for blk in self.blocks:
            x = blk(x)
        if apply_norm:
            x = self.norm(x)
        return EncoderOutput(tokens=x, mask=ids.mask, ids_keep=ids.ids_keep, ids_restore=ids.ids_restore)

    def pool_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, 1+K, D) encoder output (CLS first, after ``norm``) -> (B, D): the feature the fine-tuned
        classifier was trained on (see :class:`EncoderHead`); visible patch tokens only when masked."""
        if self.encoder_head is None:
            raise MaelensError("this model was not fine-tuned (no classifier pooling stored): pool the tokens "
                               "with mean or cls instead")
        # pool: mean of the patch tokens (global_pool) or the CLS token
        x = tokens[:, 1:].mean(dim=1) if self.encoder_head.pool == "avg" else tokens[:, 0]
        # normalise the pooled vector where the model was fine-tuned so
        return self.fc_norm(x) if self.encoder_head.fc_norm else x

    def forward_encoder(self, imgs: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None,
                        **kwargs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Official signature: (latent (B, 1+K, D), mask (B, L), ids_restore (B, L))."""
        out = self.encode(imgs, mask_ratio, noise, **kwargs)
        return out.tokens, out.mask, out.ids_restore

    def require_decoder(self, source: str = "this model", needs: str = "reconstruction and decoder analyses",
                        hint: str = "") -> None:
        """The one check that a model has the decoder an analysis needs: raises :class:`MaelensError`
        naming ``source`` (e.g. the checkpoint's path) and what ``needs`` it, with an optional ``hint``."""
        if not self.has_decoder:
            raise MaelensError(f"{source} has no decoder (encoder-only weights): {needs} need a full MAE "
                               f"checkpoint{hint}")

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """(B, 1+K, D) latent -> (B, L, p*p*C) predictions for every patch (CLS removed)."""
        self.require_decoder()
        # project the encoder's tokens to the decoder's width: (B, 1 + K, D) -> (B, 1 + K, D_dec)
        x = self.decoder_embed(latent)
        b, n_tokens, d = x.shape
        # append the one shared mask token after the CLS and the K visible tokens: (B, 1 + K + 1, D_dec)
        x = torch.cat([x, self.mask_token.expand(b, 1, -1)], dim=1)
        # unshuffle and fill in one gather (the official code concatenates L - K copies of the mask token, then
        # gathers, then puts the CLS back: the same tokens): row 0 takes the CLS token, patch j its visible
        # token 1 + ids_restore[j] when it was kept (ids_restore[j] < K), else the mask token (row 1 + K)
        index = torch.cat([ids_restore.new_full((b, 1), -1), ids_restore.clamp(max=n_tokens - 1)], dim=1) + 1
        x = torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, d))  # (B, 1 + L, D_dec)
        # the decoder's own position embedding, then its blocks over all 1 + L tokens
        x = x + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        x = self.decoder_norm(x)
        # predict the p*p*C values of every patch, and drop the CLS token
        x = self.decoder_pred(x)
        return x[:, 1:, :]

    # ---- loss -------------------------------------------------------------------------------
    def target_images(self, imgs: torch.Tensor) -> torch.Tensor:
        """Images in the space the decoder predicts: model inputs, or YCbCr of the de-normalised RGB
        (``ycbcr``: the paper's weighted MSE_w; ``ycbcr-plain``: the same channels, unweighted MSE)."""
        if self.config.loss_target in YCBCR_TARGETS:
            return rgb_to_ycbcr(denormalize(imgs, self.config.norm_mean, self.config.norm_std, clamp=False))
        return imgs

    def patch_losses(self, imgs: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """(B, L) loss of every patch: the MSE of ``pred`` against the target patch (per-patch normalised
        with ``norm_pix_loss``; YCbCr, channel-weighted as the paper's MSE_w for ``ycbcr``).

        Always float32, also under a bf16 autocast of the forward pass (issue 12): the targets (colour
        conversion, per-patch normalisation) and the loss are computed outside autocast."""
        with torch.autocast(device_type=imgs.device.type, enabled=False):
            target = self.patchify(self.target_images(imgs.float()))
            if self.config.norm_pix_loss:
                target = normalize_patches(target)
            weights = YCBCR_WEIGHTS if self.config.loss_target == "ycbcr" else None
            return patch_errors(pred.float(), target, weights)

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """MAE's training loss: the mean of :meth:`patch_losses` over the removed patches (``mask`` 1)."""
        return masked_mean(self.patch_losses(imgs, pred), mask)

    def forward(self, imgs: torch.Tensor, mask_ratio: float = 0.75, noise: torch.Tensor | None = None,
                *, masking: str = "random", generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss, pred (B, L, p*p*C), mask (B, L) with 1 = removed)."""
        self.require_decoder()
        out = self.encode(imgs, mask_ratio, noise, masking=masking, generator=generator)
        pred = self.forward_decoder(out.tokens, out.ids_restore)
        loss = self.forward_loss(imgs, pred, out.mask)
        return loss, pred, out.mask


def set_fused_attention(model: nn.Module, enabled: bool) -> None:
    """Switch timm's fused scaled-dot-product attention on or off in every block of ``model``."""
    for module in model.modules():
        if hasattr(module, "fused_attn") and hasattr(module, "qkv"):
            module.fused_attn = enabled

__all__ = ["EncoderHead", "EncoderOutput", "MaskedAutoencoderViT", "set_fused_attention"]
