"""The IPOL decoder attention metrics (Sarbout & Colom, sec. 5 "Patch attention properties", Fig. 9-10) carried
over to a CAE's latent contextual regressor, whose cross-attention is where a CAE completes the image.

IPOL defines them on MAE's decoder self-attention over all N patches: W (N, N) is the head mean of a layer's
attention with the CLS row and column dropped, unrenormalised; the importance of patch j is its column sum
s_j = sum_i W[i, j]; the K most important patches (K = the number of visible patches) are compared with the
visible ones (*consistency*: they are exactly the visible ones); every other patch i has an *influencer*, the
highest-attention most-important patch among the top-n entries of row i, or none (a *black* patch); *locality*
is the share of influenced patches whose influencer is in their 3 x 3 neighbourhood.

In a CAE regressor layer the queries are the M masked patches only, and the keys are [CLS, the K visible
representations, the M queries] (:class:`~maelens.models.cae.RegressorBlock`). The map of one layer is built
the same way (:func:`regressor_map`): head mean, CLS key dropped, unrenormalised, each key placed at its patch's
position, so W is (N, N) with a row for every masked patch and zero rows for the visible patches (they send no
query: their representations are not updated). Then:

- importance, most-important set and consistency: exactly IPOL's, on this W. The question keeps its meaning:
  do the masked queries attend to the visible patches (consistent) or to one another?
- influencer, black patches, locality: IPOL's, restricted to the patches that have a row, the masked ones.
  When the layer is consistent the non-important patches are exactly the masked ones and nothing is left out;
  otherwise a visible patch outside the most-important set has no row and takes no part (counted in
  ``unrowed``), and a masked patch inside it is its own influencer, as in IPOL.
- IPOL's positional bias (importance against position for a fixed mask) is not carried over: it is not
  computed for a CAE. Influence-map figures are not drawn either (``maelens influence-map`` refuses a CAE).

As IPOL, locality and the black proportion are pooled over the consistent images of each layer by default
(``all_images=True``: over all images).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..errors import ConfigError, DataError
from .attention import chebyshev_local, importance, importance_ranks, influencers, patch_distances


def regressor_map(attention: torch.Tensor, ids_keep: torch.Tensor, ids_masked: torch.Tensor,
                  num_patches: int) -> torch.Tensor:
    """One regressor layer's attention (B, h, M, 1 + K + M) (keys: CLS, the visible patches ``ids_keep`` (B, K),
    the queries ``ids_masked`` (B, M)) -> W (B, N, N): head mean, CLS key dropped, rows and columns at the patches'
    positions, zero rows for the visible patches."""
    b, _, m, _ = attention.shape
    a = attention.mean(dim=1)[..., 1:]  # (B, M, K + M), no renormalisation
    columns = torch.cat([ids_keep, ids_masked], dim=1)
    rows = a.new_zeros(b, m, num_patches).scatter_(2, columns.unsqueeze(1).expand(-1, m, -1), a)
    return a.new_zeros(b, num_patches, num_patches).scatter_(1, ids_masked.unsqueeze(-1).expand(-1, -1, num_patches),
                                                            rows)


@dataclass
class RegressorImageMetrics:
    """Per image (B,) tensors for one layer: ``consistent`` (bool), ``soft_consistency`` (|important & visible|
    / |visible|), ``local`` / ``influenced`` (masked non-important patches with an influencer, in the 3 x 3
    neighbourhood / in all), ``black`` / ``candidates`` (masked non-important patches without an influencer /
    all masked non-important patches), ``unrowed`` (non-important visible patches: no row, left out)."""

    consistent: torch.Tensor
    soft_consistency: torch.Tensor
    local: torch.Tensor
    influenced: torch.Tensor
    black: torch.Tensor
    candidates: torch.Tensor
    unrowed: torch.Tensor


def regressor_metrics(W: torch.Tensor, visible: torch.Tensor, grid_size: tuple[int, int], top_n: int = 5,
                      include_self: bool = True) -> RegressorImageMetrics:
    """IPOL's per-image quantities on a regressor map W (B, N, N) (:func:`regressor_map`), ``visible`` (B, N) bool."""
    k = visible.sum(-1, keepdim=True)
    important = importance_ranks(importance(W)) < k
    influencer = influencers(W, important, top_n, include_self)
    masked = ~visible
    candidates = masked & ~important
    influenced = candidates & (influencer >= 0)
    return RegressorImageMetrics(
        consistent=(important == visible).all(-1),
        soft_consistency=(important & visible).sum(-1).float() / k.squeeze(-1).clamp(min=1).float(),
        local=(influenced & chebyshev_local(influencer, grid_size)).sum(-1),
        influenced=influenced.sum(-1),
        black=(candidates & (influencer < 0)).sum(-1),
        candidates=candidates.sum(-1),
        unrowed=(visible & ~important).sum(-1),
    )


@dataclass
class RegressorLayerStats:
    """One regressor layer over a dataset: ``consistency`` (share of consistent images), mean
    ``soft_consistency``, pooled ``locality`` and ``black_fraction`` (see the module docstring), the
    ``mean_attention_distance`` in pixels of the masked queries over the patch keys (CLS left out, renormalised,
    as :func:`~maelens.analysis.attention.mean_attention_distance`), ``visible_share`` (the attention mass the
    queries give to visible keys, CLS left out), and the counts behind the ratios."""

    layer: int
    images: int
    consistency: float
    soft_consistency: float
    locality: float
    black_fraction: float
    mean_attention_distance: float
    visible_share: float
    pooled_images: int
    unrowed_patches: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RegressorAttentionReport:
    """Result of :func:`regressor_attention_stats`: ``settings`` and one :class:`RegressorLayerStats` per layer."""

    settings: dict[str, Any]
    layers: list[RegressorLayerStats]

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame([{"part": "regressor", **row.to_dict()} for row in self.layers])

    def to_dict(self) -> dict[str, Any]:
        return {**self.settings, "regressor_layers": [row.to_dict() for row in self.layers]}


class _Totals:
    """Running sums of one layer's per-image quantities."""

    def __init__(self) -> None:
        self.sums = dict.fromkeys(("images", "consistent", "soft", "local", "influenced", "black", "candidates",
                                   "unrowed", "distance", "visible_share", "pooled"), 0.0)

    def add(self, metrics: RegressorImageMetrics, distance: torch.Tensor, visible_share: torch.Tensor,
            all_images: bool) -> None:
        pool = torch.ones_like(metrics.consistent) if all_images else metrics.consistent
        s = self.sums
        s["images"] += len(metrics.consistent)
        s["consistent"] += float(metrics.consistent.sum())
        s["soft"] += float(metrics.soft_consistency.sum())
        s["pooled"] += float(pool.sum())
        for key in ("local", "influenced", "black", "candidates", "unrowed"):
            s[key] += float(getattr(metrics, key)[pool].sum())
        s["distance"] += float(distance.sum())
        s["visible_share"] += float(visible_share.sum())

    def stats(self, layer: int) -> RegressorLayerStats:
        s = self.sums
        n = max(s["images"], 1)

        def ratio(a: float, b: float) -> float:
            return a / b if b else float("nan")

        return RegressorLayerStats(layer=layer, images=int(s["images"]), consistency=s["consistent"] / n,
                                   soft_consistency=s["soft"] / n, locality=ratio(s["local"], s["influenced"]),
                                   black_fraction=ratio(s["black"], s["candidates"]),
                                   mean_attention_distance=s["distance"] / n, visible_share=s["visible_share"] / n,
                                   pooled_images=int(s["pooled"]), unrowed_patches=int(s["unrowed"]))


@torch.no_grad()
def regressor_attention_stats(model: torch.nn.Module, dataset: Dataset, *, masking: str = "block",
                              mask_ratio: float = 0.5, top_n: int = 5, include_self: bool = True,
                              all_images: bool = False, batch_size: int = 64, seed: int = 0,
                              device: str | torch.device = "cpu", num_workers: int = 0,
                              quiet: bool = False) -> RegressorAttentionReport:
    """Stream ``dataset`` (items ``(image, label)``) through a CAE (:class:`~maelens.models.cae.ContextAutoencoder`)
    with masks drawn from ``seed``, record every regressor layer's cross-attention and pool IPOL's metrics as the
    module docstring says."""
    if getattr(model, "method", None) != "cae":
        raise ConfigError("regressor attention metrics need a CAE (a model with a latent contextual regressor)")
    if top_n < 1:
        raise ConfigError(f"top_n must be at least 1, got {top_n}")
    if len(dataset) == 0:
        raise DataError("the dataset holds no images")
    cfg = model.config
    model.eval().to(device)
    generator = torch.Generator().manual_seed(seed)
    distances = patch_distances(torch.arange(cfg.num_patches, device=device), cfg.grid_size, cfg.patch_size)
    totals = [_Totals() for _ in model.regressor_blocks]
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    for blk in model.regressor_blocks:
        blk.attn.record = True
    try:
        for batch in tqdm(loader, desc="regressor attention", unit="batch", disable=quiet, leave=False):
            imgs = (batch[0] if isinstance(batch, (list, tuple)) else batch).to(device)
            ids, ids_masked = model.split(imgs.shape[0], mask_ratio, masking, generator, imgs.device)
            model.regress(model.encode_patches(imgs, ids.ids_keep), ids.ids_keep, ids_masked)
            visible = ids.mask == 0
            for blk, total in zip(model.regressor_blocks, totals):
                W = regressor_map(blk.attn.attention, ids.ids_keep, ids_masked, cfg.num_patches)
                metrics = regressor_metrics(W, visible, cfg.grid_size, top_n, include_self)
                rows = torch.gather(W, 1, ids_masked.unsqueeze(-1).expand(-1, -1, cfg.num_patches))  # (B, M, N)
                mass = rows.sum(-1).clamp(min=torch.finfo(rows.dtype).tiny)
                d = torch.gather(distances.expand(imgs.shape[0], -1, -1), 1,
                                 ids_masked.unsqueeze(-1).expand(-1, -1, cfg.num_patches))
                distance = ((rows * d).sum(-1) / mass).mean(-1)
                visible_share = ((rows * visible.unsqueeze(1)).sum(-1) / mass).mean(-1)
                total.add(metrics, distance, visible_share, all_images)
    finally:
        for blk in model.regressor_blocks:
            blk.attn.record, blk.attn.attention = False, None
    settings = {"masking": masking, "mask_ratio": mask_ratio, "top_n": top_n, "include_self": include_self,
                "all_images": all_images, "seed": seed, "images": len(dataset),
                "definition": "IPOL sec. 5 metrics on the CAE regressor's cross-attention (maelens.analysis."
                              "cae_attention): rows = masked queries, keys = visible patches and queries"}
    return RegressorAttentionReport(settings=settings, layers=[t.stats(i) for i, t in enumerate(totals)])


__all__ = ["RegressorAttentionReport", "RegressorImageMetrics", "RegressorLayerStats",
           "regressor_attention_stats", "regressor_map", "regressor_metrics"]
