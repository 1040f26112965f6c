"""Attention rollout through the encoder (Abnar & Zuidema 2020, "Quantifying Attention Flow in
Transformers", ACL, sec. 3).

Each layer's attention A_l (N x N, rows = queries, CLS first) is fused over heads (mean, as the paper;
max or min as later practice), optionally thinned by discarding its weakest entries, and mixed with
the residual connection: Ã_l = 0.5 I + 0.5 A_l, rows renormalised to sum to 1. The rollout is the
product R = Ã_L ... Ã_2 Ã_1: R[i, j] is how much input token j flows into output token i. The CLS row
(R[0, 1:]) is the usual attribution map; the row of a patch token shows where that patch draws from.

An MAE encoder sees only the visible patches in pretraining; rollout runs it on every patch (mask ratio
0), as for fine-tuned and timm ViTs.

The discard ratio is not in the paper (it comes from J. Gildenblat's vit-explain): ``scope="map"``
zeroes the smallest ``ratio`` share of all N² entries of the fused map except the CLS-to-CLS one (as
vit-explain), ``scope="row"`` the smallest ``floor(ratio · N)`` entries of each query row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from ..choices import DISCARD_SCOPES, HEAD_FUSIONS
from ..errors import ConfigError
from ..models.mae import MaskedAutoencoderViT
from ..validation import check_grid
from .hooks import AttentionChunk, AttentionRecorder

__all__ = ["DISCARD_SCOPES", "HEAD_FUSIONS", "RolloutResult", "attention_rollout", "discard_lowest", "fuse_heads",
           "rollout_maps"]


def fuse_heads(attention: torch.Tensor, fusion: str = "mean") -> torch.Tensor:
    """(..., H, N, N) attention of the heads -> (..., N, N) by their mean, max or min."""
    if fusion == "mean":
        return attention.mean(dim=-3)
    if fusion == "max":
        return attention.amax(dim=-3)
    if fusion == "min":
        return attention.amin(dim=-3)
    raise ConfigError(f"head fusion must be one of {', '.join(HEAD_FUSIONS)}, got {fusion!r}")


def discard_lowest(attention: torch.Tensor, ratio: float, scope: str = "map") -> torch.Tensor:
    """(..., N, N) with its weakest entries set to 0: the smallest ``ratio`` share of each map except
    the CLS-to-CLS entry (``map``), or the smallest ``floor(ratio · N)`` of each row (``row``)."""
    if not 0 <= ratio < 1:
        raise ConfigError(f"discard ratio must be in [0, 1), got {ratio}")
    if scope not in DISCARD_SCOPES:
        raise ConfigError(f"discard scope must be one of {', '.join(DISCARD_SCOPES)}, got {scope!r}")
    n = attention.shape[-1]
    if scope == "row":
        drop = int(ratio * n)
        if drop == 0:
            return attention
        idx = attention.topk(drop, dim=-1, largest=False).indices
        return attention.scatter(-1, idx, 0.0)
    flat = attention.reshape(*attention.shape[:-2], n * n)
    drop = int(ratio * n * n)
    if drop == 0:
        return attention
    # the CLS-to-CLS entry (flat index 0) is never dropped: rank it above everything
    ranked = flat.clone()
    ranked[..., 0] = float("inf")
    idx = ranked.topk(drop, dim=-1, largest=False).indices
    return flat.scatter(-1, idx, 0.0).reshape(attention.shape)


def attention_rollout(attentions: Sequence[torch.Tensor], *, discard_ratio: float = 0.0, discard_scope: str = "map",
                      residual: bool = True) -> torch.Tensor:
    """Rollout R = Ã_L ... Ã_1 (Abnar & Zuidema 2020, sec. 3) of head-fused attentions A_l (..., N, N),
    first layer first: Ã_l = 0.5 I + 0.5 A_l (``residual``; else A_l itself) after discarding, rows
    renormalised to sum to 1. Float64 throughout."""
    if not attentions:
        raise ConfigError("attention rollout needs at least one layer")
    result = None
    for a in attentions:
        a = discard_lowest(a.to(torch.float64), discard_ratio, discard_scope)
        if residual:
            a = 0.5 * torch.eye(a.shape[-1], dtype=a.dtype, device=a.device) + 0.5 * a
        a = a / a.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(a.dtype).tiny)
        result = a if result is None else a @ result
    return result


@dataclass
class RolloutResult:
    """Rollout matrices ``rollout`` (B, N, N), N = 1 + patches (CLS first), for an encoder with patch grid
    ``grid_size``; ``settings`` say how they were computed."""

    rollout: np.ndarray
    grid_size: tuple[int, int]
    settings: dict[str, Any] = field(default_factory=dict)

    def cls_map(self, index: int = 0) -> np.ndarray:
        """(h, w) share of the CLS output that flows from each patch of image ``index``."""
        return self.rollout[index, 0, 1:].reshape(self.grid_size)

    def patch_map(self, index: int, patch: int) -> np.ndarray:
        """(h, w) share of patch ``patch``'s output (row-major patch index) that flows from each patch."""
        rows, cols = self.grid_size
        if not 0 <= patch < rows * cols:
            raise ConfigError(f"patch index must be in [0, {rows * cols - 1}] for a {rows}x{cols} grid, got {patch}")
        return self.rollout[index, 1 + patch, 1:].reshape(self.grid_size)


@torch.no_grad()
def rollout_maps(model: MaskedAutoencoderViT, images: torch.Tensor, *, head_fusion: str = "mean",
                 discard_ratio: float = 0.0, discard_scope: str = "map", layers: int | None = None,
                 device: str | torch.device = "cpu") -> RolloutResult:
    """Attention rollout of ``images`` (B, 3, S, S), normalised for ``model``, through its first ``layers``
    encoder blocks (all by default), every patch visible (mask ratio 0); see :func:`attention_rollout`."""
    from ..checkpoint.objects import as_model

    model = as_model(model)
    check_grid(model.config.grid_size, "attention rollout")  # a 1x1 grid gives "perfect" or NaN values (issue 30)
    if head_fusion not in HEAD_FUSIONS:
        raise ConfigError(f"head fusion must be one of {', '.join(HEAD_FUSIONS)}, got {head_fusion!r}")
    depth = len(model.blocks)
    layers = depth if layers is None else layers
    if not 1 <= layers <= depth:
        raise ConfigError(f"rollout layers must be in [1, {depth}] for this encoder, got {layers}")
    model = model.to(device).eval()

    def fuse(chunk: AttentionChunk) -> torch.Tensor:  # keep (b, N, N), not (b, H, N, N)
        return fuse_heads(chunk.probs, head_fusion)

    with AttentionRecorder(model, parts=("encoder",), reduce=fuse) as rec:
        model.encode(images.to(device), 0.0)
    roll = attention_rollout(rec.maps["encoder"][:layers], discard_ratio=discard_ratio, discard_scope=discard_scope)
    settings = {"head_fusion": head_fusion, "discard_ratio": discard_ratio, "discard_scope": discard_scope,
                "layers": layers, "residual": "0.5 I + 0.5 A, rows renormalised", "mask_ratio": 0.0,
                "model": model.config.to_dict()}
    return RolloutResult(rollout=roll.float().cpu().numpy(), grid_size=tuple(model.grid_size), settings=settings)
