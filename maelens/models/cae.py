"""Context Autoencoder (CAE; Chen et al., ``shared/papers/004_...``, sec. 3 and Fig. 1): an encoder that sees the
visible patches only, a latent contextual regressor that predicts the masked patches' representations from the
visible ones, an alignment loss that ties those predictions to the encoder's own representations of the masked
patches, and a decoder that reconstructs the masked patches from the predictions alone.

The encoder is MAE's (:class:`~maelens.models.MaskedAutoencoderViT` built with no decoder: same modules, CLS
token and fixed sin-cos positions), so every encoder analysis that runs on an MAE runs on a CAE, and an MAE
and a CAE encoder of one preset have the same parameters. Per training step (:meth:`ContextAutoencoder.step`):

1. encoder F on the visible patches X_v (CLS first): Z_v = F(X_v);
2. regressor H: mask queries Q_m (one learned token, the same for every masked patch) cross-attend to the keys /
   values [Z_v, Q_m] (the paper's default: visible representations and the previous layer's queries; Z_v is not
   updated); the masked positions' embeddings P_m are added to the queries and the visible ones P_v to Z_v when
   the attention weights are computed (keys), not to the values. Z_m = H(Z_v, P_v, P_m);
3. alignment target Zbar_m = F(X_m): the same encoder run on the masked patches alone, under ``no_grad`` and
   detached (stop-gradient: no gradient reaches the encoder through the target);
4. decoder G: self-attention blocks over Z_m + P_m only (never the visible representations), then a linear
   layer predicting the target of every masked patch (pixels, norm-pixels or HOG);
5. loss = MSE(Y_m, target of X_m) + lambda * MSE(Z_m, Zbar_m), lambda = 2.

:meth:`~ContextAutoencoder.reconstruct_all` is the paper's Fig. 4 path: every patch through the encoder, its
outputs straight to the decoder, no regressor.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from timm.layers import Mlp
from timm.models.vision_transformer import Block
from torch import nn

from ..errors import MaelensError
from .cae_config import CAE_MASK_RATIO, CAE_MASKING, CAEConfig
from .hog import hog_targets
from .losses import normalize_patches, patch_errors
from .mae import MaskedAutoencoderViT
from .masking import MaskIds


class CrossAttention(nn.Module):
    """Multi-head attention of ``queries`` (B, M, D) over ``keys`` / ``values`` (B, N, D), each projected by its
    own linear layer. ``record=True`` keeps the last attention probabilities in :attr:`attention` (B, h, M, N)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.record = False
        self.attention: torch.Tensor | None = None

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        b, m, d = queries.shape
        h = self.num_heads
        # project and split the heads: (B, h, M or N, D / h)
        q = self.q(queries).reshape(b, m, h, d // h).transpose(1, 2)
        k = self.k(keys).reshape(b, keys.shape[1], h, d // h).transpose(1, 2)
        v = self.v(values).reshape(b, values.shape[1], h, d // h).transpose(1, 2)
        # softmax(q k^T / sqrt(d_h)) v
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        if self.record:
            self.attention = attn.detach()
        x = (attn @ v).transpose(1, 2).reshape(b, m, d)
        return self.proj(x)


class RegressorBlock(nn.Module):
    """One cross-attention block of the latent contextual regressor (pre-norm, residual on the queries):
    ``x = q + CA(LN_q(q + p_q), LN_k(kv + p_kv), LN_v(kv)); x = x + MLP(LN(x))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, eps: float):
        super().__init__()
        norm = partial(nn.LayerNorm, eps=eps)
        self.norm_q, self.norm_k, self.norm_v = norm(dim), norm(dim), norm(dim)
        self.attn = CrossAttention(dim, num_heads, qkv_bias)
        self.norm2 = norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, queries: torch.Tensor, pos_q: torch.Tensor, kv: torch.Tensor, pos_kv: torch.Tensor) -> torch.Tensor:
        x = queries + self.attn(self.norm_q(queries + pos_q), self.norm_k(kv + pos_kv), self.norm_v(kv))
        return x + self.mlp(self.norm2(x))


@dataclass
class CAEOutput:
    """One training step's results: ``loss`` = ``reconstruction`` + lambda * ``alignment`` (scalars, float32);
    ``pred`` (B, M, T) the decoder's targets for the masked patches, ``latent_pred`` (B, M, D) the regressor's
    Z_m, ``latent_target`` (B, M, D) the encoder's detached Zbar_m; ``mask`` (B, L) 1 = masked and
    ``ids_masked`` (B, M) the masked patches in the order of the M rows."""

    loss: torch.Tensor
    reconstruction: torch.Tensor
    alignment: torch.Tensor
    pred: torch.Tensor
    latent_pred: torch.Tensor
    latent_target: torch.Tensor
    mask: torch.Tensor
    ids_masked: torch.Tensor


class ContextAutoencoder(MaskedAutoencoderViT):
    """CAE built from a :class:`~maelens.models.cae_config.CAEConfig`; the encoder modules (``patch_embed``,
    ``cls_token``, ``pos_embed``, ``blocks``, ``norm``) and :meth:`encode` are MAE's."""

    method = "cae"

    def __init__(self, config: CAEConfig):
        super().__init__(config)  # the encoder (CAEConfig has no MAE decoder)
        c = config
        norm_layer = partial(nn.LayerNorm, eps=c.layer_norm_eps)
        self.mask_query = nn.Parameter(torch.zeros(1, 1, c.embed_dim))
        self.regressor_blocks = nn.ModuleList([
            RegressorBlock(c.embed_dim, c.num_heads, c.mlp_ratio, c.qkv_bias, c.layer_norm_eps)
            for _ in range(c.regressor_depth)
        ])
        self.regressor_norm = norm_layer(c.embed_dim)
        self.cae_decoder_blocks = nn.ModuleList([
            Block(c.embed_dim, c.num_heads, c.mlp_ratio, qkv_bias=c.qkv_bias, norm_layer=norm_layer)
            for _ in range(c.cae_decoder_depth)
        ])
        self.cae_decoder_norm = norm_layer(c.embed_dim)
        self.cae_decoder_pred = nn.Linear(c.embed_dim, c.target_dim)
        for part in (self.regressor_blocks, self.regressor_norm, self.cae_decoder_blocks, self.cae_decoder_norm,
                     self.cae_decoder_pred):
            part.apply(self._init_module)
        nn.init.normal_(self.mask_query, std=0.02)

    config: CAEConfig

    # ---- parameter counts ----------------------------------------------------------------------
    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters of the encoder, the regressor (with the mask query) and the decoder (with the
        prediction layer); the encoder's equals an MAE encoder's of the same preset."""
        def count(*modules: nn.Module | nn.Parameter) -> int:
            params = [p for m in modules for p in ([m] if isinstance(m, nn.Parameter) else m.parameters())]
            return sum(p.numel() for p in params if p.requires_grad)

        encoder = count(self.patch_embed, self.cls_token, self.blocks, self.norm)
        regressor = count(self.mask_query, self.regressor_blocks, self.regressor_norm)
        decoder = count(self.cae_decoder_blocks, self.cae_decoder_norm, self.cae_decoder_pred)
        return {"encoder": encoder, "regressor": regressor, "decoder": decoder, "total": encoder + regressor + decoder}

    def require_decoder(self, source: str = "this model", needs: str = "reconstruction and decoder analyses",
                        hint: str = "") -> None:
        """A CAE has no MAE decoder (self-attention over all patches): ``needs`` is refused with that reason."""
        raise MaelensError(f"{source} is a CAE: it has no MAE decoder over all patches (its decoder sees the "
                           f"regressor's predictions of the masked patches only), so {needs} do not apply{hint}")

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """MAE's (B, L, p*p*C) -> (B, C, H, W); a HOG-target CAE's predictions are histograms, not pixels."""
        if x.shape[-1] != self.config.patch_size ** 2 * self.config.in_chans:
            raise MaelensError(f"{self.config.name} predicts {self.config.target.upper()} histograms, not pixels: "
                               "images of its predictions (reconstruction figures) need a pixel-target CAE")
        return super().unpatchify(x)

    # ---- the three parts ------------------------------------------------------------------------
    def positions(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, M) patch indices -> (B, M, D) their fixed sin-cos position embeddings (the encoder's table)."""
        table = self.pos_embed[:, 1:, :].expand(ids.shape[0], -1, -1)
        return torch.gather(table, 1, ids.unsqueeze(-1).expand(-1, -1, table.shape[-1]))

    def encode_patches(self, imgs: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """The encoder on the patches ``ids`` (B, K) only: (B, 1 + K, D), CLS first, after the final norm."""
        x = self.patch_embed(imgs)
        x = torch.gather(x, 1, ids.unsqueeze(-1).expand(-1, -1, x.shape[-1])) + self.positions(ids)
        x = torch.cat([(self.cls_token + self.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1), x], dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

    def regress(self, latent: torch.Tensor, ids_keep: torch.Tensor, ids_masked: torch.Tensor) -> torch.Tensor:
        """Regressor H: (B, 1 + K, D) encoder output of the visible patches ``ids_keep`` -> (B, M, D) predicted
        representations Z_m of the patches ``ids_masked``.

        Queries: the mask query (plus P_m in the attention weights); keys / values: [Z_v, queries] of the layer
        (Z_v fixed, with P_v and the CLS position on the keys)."""
        b, m = ids_masked.shape
        pos_q = self.positions(ids_masked)
        pos_v = torch.cat([self.pos_embed[:, :1, :].expand(b, -1, -1), self.positions(ids_keep)], dim=1)
        queries = self.mask_query.expand(b, m, -1)
        for blk in self.regressor_blocks:
            # keys and values: the visible representations and the current queries
            kv = torch.cat([latent, queries], dim=1)
            queries = blk(queries, pos_q, kv, torch.cat([pos_v, pos_q], dim=1))
        return self.regressor_norm(queries)

    def decode(self, latent: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Decoder G: (B, M, D) representations of the patches ``ids`` (B, M) -> (B, M, T) predicted targets;
        the blocks attend among these M tokens only."""
        x = latent + self.positions(ids)
        for blk in self.cae_decoder_blocks:
            x = blk(x)
        return self.cae_decoder_pred(self.cae_decoder_norm(x))

    # ---- targets and loss -----------------------------------------------------------------------
    def targets(self, imgs: torch.Tensor) -> torch.Tensor:
        """(B, L, T) reconstruction target of every patch, float32 outside autocast: pixels (per-patch
        standardised with ``norm_pix_loss``) or HOG (:func:`~maelens.models.hog.hog_targets`)."""
        c = self.config
        with torch.autocast(device_type=imgs.device.type, enabled=False):
            if c.target == "hog":
                return hog_targets(imgs.float(), c.patch_size, c.cell_side, c.hog_bins)
            target = self.patchify(imgs.float())
            return normalize_patches(target) if c.norm_pix_loss else target

    def split(self, batch_size: int, mask_ratio: float, masking: str, generator: torch.Generator | None,
              device: torch.device, noise: torch.Tensor | None = None) -> tuple[MaskIds, torch.Tensor]:
        """The visible / masked split of a batch: (MaskIds, ids_masked (B, M)) from ``noise`` or the sampler."""
        from .masking import ids_from_noise, num_kept

        if noise is None:
            noise, keep = self.masking_noise(batch_size, mask_ratio, masking, generator, device)
        else:
            keep = num_kept(noise.shape[1], mask_ratio)
        ids = ids_from_noise(noise.to(device), keep)
        ids_masked = torch.argsort(ids.ids_restore, dim=1)[:, keep:]
        return ids, ids_masked

    def step(self, imgs: torch.Tensor, mask_ratio: float = CAE_MASK_RATIO, noise: torch.Tensor | None = None, *,
             masking: str = CAE_MASKING, generator: torch.Generator | None = None) -> CAEOutput:
        """One CAE forward pass on (B, C, H, W) images (steps 1-5 of the module docstring)."""
        ids, ids_masked = self.split(imgs.shape[0], mask_ratio, masking, generator, imgs.device, noise)
        # 1. the encoder on the visible patches
        latent = self.encode_patches(imgs, ids.ids_keep)
        # 2. the regressor predicts the masked patches' representations
        latent_pred = self.regress(latent, ids.ids_keep, ids_masked)
        # 3. the alignment target: the encoder's representations of the masked patches, stop-gradient
        with torch.no_grad():
            latent_target = self.encode_patches(imgs, ids_masked)[:, 1:].detach()
        # 4. the decoder reconstructs the masked patches from the predictions alone
        pred = self.decode(latent_pred, ids_masked)
        # 5. the losses, in float32
        with torch.autocast(device_type=imgs.device.type, enabled=False):
            target = torch.gather(self.targets(imgs), 1, ids_masked.unsqueeze(-1).expand(-1, -1, pred.shape[-1]))
            reconstruction = patch_errors(pred.float(), target).mean()
            alignment = ((latent_pred.float() - latent_target.float()) ** 2).mean()
            loss = reconstruction + self.config.alignment_weight * alignment
        return CAEOutput(loss=loss, reconstruction=reconstruction, alignment=alignment, pred=pred,
                         latent_pred=latent_pred, latent_target=latent_target, mask=ids.mask, ids_masked=ids_masked)

    def forward(self, imgs: torch.Tensor, mask_ratio: float = CAE_MASK_RATIO, noise: torch.Tensor | None = None,
                *, masking: str = CAE_MASKING, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """MAE's signature: (loss, pred (B, L, T) with zeros at the visible patches, mask (B, L) 1 = masked)."""
        out = self.step(imgs, mask_ratio, noise, masking=masking, generator=generator)
        full = out.pred.new_zeros(imgs.shape[0], self.num_patches, out.pred.shape[-1])
        full.scatter_(1, out.ids_masked.unsqueeze(-1).expand(-1, -1, out.pred.shape[-1]), out.pred)
        return out.loss, full, out.mask

    # ---- Fig. 4 -----------------------------------------------------------------------------------
    def reconstruct_all(self, imgs: torch.Tensor) -> torch.Tensor:
        """The paper's Fig. 4 path: every patch into the encoder, its patch outputs straight into the decoder
        (no regressor): (B, C, H, W) -> (B, L, T) predicted targets of all L patches."""
        ids = torch.arange(self.num_patches, device=imgs.device).expand(imgs.shape[0], -1)
        latent = self.encode_patches(imgs, ids)[:, 1:]
        return self.decode(latent, ids)

    def reconstruction_error(self, imgs: torch.Tensor) -> torch.Tensor:
        """(B,) mean squared error of :meth:`reconstruct_all` against every patch's target (Fig. 4 measured)."""
        with torch.autocast(device_type=imgs.device.type, enabled=False):
            return patch_errors(self.reconstruct_all(imgs).float(), self.targets(imgs)).mean(dim=1)


def create_cae(preset: str = "cae-tiny", **overrides) -> ContextAutoencoder:
    """A freshly initialised CAE from a named preset, e.g. ``create_cae("cae-ipol64", target="hog")``."""
    from .cae_config import get_cae_config

    return ContextAutoencoder(get_cae_config(preset, **overrides))


__all__ = ["CAEOutput", "ContextAutoencoder", "CrossAttention", "RegressorBlock", "create_cae"]
