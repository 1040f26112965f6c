"""Token-norm statistics per layer: the distribution of the L2 norms of a block's output tokens, the
share of high-norm outlier tokens and how it depends on the patch position.

Large ViTs grow a few patch tokens whose norm is far above the others' (Darcet et al. 2024, "Vision
Transformers Need Registers", ICLR 2024, sec. 2.1: a bimodal norm histogram, cut at a fixed norm of
150 for DINOv2 ViT-g). A fixed cut does not carry over between models and layers, so here the
threshold is robust and relative, per layer over all patch tokens of the data:

    threshold = median + k · 1.4826 · MAD,   MAD = median |norm - median|,

1.4826 making the MAD a consistent estimate of the standard deviation of a Gaussian, so ``k`` reads
as "robust standard deviations above the median" (default 3; ``k`` is an option). Whether the
outliers sit at particular positions (borders, corners) is measured by each position's share of
outlier tokens, and a chi-square test of the outlier counts against equal shares for all positions.
The CLS token is reported apart (its own mean norm and the share of images whose CLS norm exceeds
the patches' threshold). It is a heavy-tail diagnostic next to the paper's Student-t fits (IPOL sec. 5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from scipy import stats
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ..choices import DEFAULT_OUTLIER_DEVIATIONS
from ..errors import ConfigError, DataError
from ..models.mae import MaskedAutoencoderViT
from . import distributed
from .layer_outputs import BlockRecorder, layer_names

#: Scale that makes the median absolute deviation estimate a Gaussian's standard deviation.
MAD_SCALE = 1.482602218505602

__all__ = ["MAD_SCALE", "TokenStatsReport", "outlier_threshold", "summarise_norms", "token_norms",
           "token_stats"]


def outlier_threshold(norms: np.ndarray, k: float = DEFAULT_OUTLIER_DEVIATIONS) -> tuple[float, float, float]:
    """``(median, mad, threshold)`` of the norms: threshold = median + k · 1.4826 · MAD (see the module
    docstring); a token is an outlier when its norm is strictly above it."""
    if not np.isfinite(k) or k < 0:
        raise ConfigError(f"the outlier threshold needs k >= 0, got {k}")
    values = np.asarray(norms, dtype=np.float64).ravel()
    if values.size == 0:
        raise DataError("no token norms to summarise")
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median)))
    return median, mad, median + k * MAD_SCALE * mad


@torch.no_grad()
def token_norms(model: MaskedAutoencoderViT, dataset: Dataset, *, parts: Sequence[str] = ("encoder",),
                mask_ratio: float = 0.0, batch_size: int = 64, device: str | torch.device = "cpu",
                num_workers: int = 0, quiet: bool = False) -> tuple[list[str], np.ndarray]:
    """Layer names and the L2 norms (L, N_images, 1 + K) of every block output token (CLS first), from one
    forward pass per batch; ``mask_ratio`` 0 (all patches) keeps positions fixed, as the position
    statistics need. Under a ``torch.distributed`` process group each rank measures a shard and every
    rank gets all norms in dataset order: the median and MAD need them all
    (:mod:`~maelens.analysis.distributed`)."""
    from ..checkpoint.objects import as_model

    model = as_model(model)
    if mask_ratio != 0:
        raise ConfigError("token statistics per position need every patch: mask ratio must be 0")
    model = model.to(device).eval()
    names = layer_names(model, parts)
    batches: list[torch.Tensor] = []
    group = distributed.current()
    loader, shard = distributed.shard_loader(dataset, batch_size, num_workers, group)

    def run_shard() -> None:
        with BlockRecorder(model, parts, reduce=lambda name, t: t.float().norm(dim=-1).cpu()) as rec:
            for imgs, _ in tqdm(loader, desc="token norms", disable=distributed.quiet_here(quiet, group),
                                unit="batch"):
                out = model.encode(imgs.to(device), 0.0)
                if "decoder" in parts:
                    model.forward_decoder(out.tokens, out.ids_restore)
                batches.append(torch.stack([rec.outputs[n] for n in names]))

    distributed.synchronised(group, run_shard)
    if shard.num_images == 0:
        raise DataError("the dataset is empty: no tokens to measure")
    if group is None:
        return names, torch.cat(batches, dim=1).numpy()
    # the median and MAD need every norm: gather them, image-major, in dataset order
    local = torch.cat(batches, dim=1).numpy().transpose(1, 0, 2) if batches else np.zeros((0,), np.float32)
    return names, distributed.gather_rows(group, local, shard.indices, shard.num_images).transpose(1, 0, 2)


@dataclass
class TokenStatsReport:
    """Per layer: ``layers`` rows (summary numbers), ``position_share`` (L, h, w) share of outlier tokens
    at each patch position, ``position_norm`` (L, h, w) mean norm there, ``hist_counts`` (L, bins) and
    ``hist_edges`` (L, bins + 1) histograms of the patch-token norms; ``settings``."""

    layers: list[dict[str, Any]]
    position_share: np.ndarray
    position_norm: np.ndarray
    hist_counts: np.ndarray
    hist_edges: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)

    def to_frame(self) -> Any:
        """pandas DataFrame, one row per layer."""
        import pandas as pd

        return pd.DataFrame(self.layers)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON: settings and the per-layer rows (arrays go to :meth:`arrays`)."""
        return {**self.settings, "layers": self.layers}

    def arrays(self) -> dict[str, np.ndarray]:
        """The per-position maps and histograms, for ``.npz``."""
        return {"position_share": self.position_share, "position_norm": self.position_norm,
                "hist_counts": self.hist_counts, "hist_edges": self.hist_edges,
                "layers": np.array([row["layer"] for row in self.layers])}


def summarise_norms(names: Sequence[str], norms: np.ndarray, grid_size: tuple[int, int], *, k: float = DEFAULT_OUTLIER_DEVIATIONS,
                    bins: int = 50) -> TokenStatsReport:
    """:class:`TokenStatsReport` of token norms (L, N_images, 1 + K) of layers ``names`` on a patch grid."""
    rows_, cols_ = grid_size
    if norms.ndim != 3 or norms.shape[0] != len(names) or norms.shape[2] != 1 + rows_ * cols_:
        raise DataError(f"expected norms (layers={len(names)}, images, 1 + {rows_ * cols_}), got {norms.shape}")
    layers, shares, means, counts, edges = [], [], [], [], []
    for name, layer in zip(names, norms):
        patches, cls = layer[:, 1:], layer[:, 0]
        median, mad, threshold = outlier_threshold(patches, k)
        outlier = patches > threshold
        per_position = outlier.sum(axis=0)
        total = int(per_position.sum())
        # are the outliers spread evenly over the positions? (chi-square against equal expected counts)
        p_uniform = float(stats.chisquare(per_position).pvalue) if total > 0 else float("nan")
        border = np.zeros(grid_size, dtype=bool)
        border[[0, -1], :] = border[:, [0, -1]] = True
        grid_share = outlier.mean(axis=0).reshape(grid_size)
        layers.append({
            "layer": name, "mean": float(patches.mean()), "std": float(patches.std()), "median": median,
            "mad": mad, "p01": float(np.quantile(patches, 0.01)), "p99": float(np.quantile(patches, 0.99)),
            "max": float(patches.max()), "threshold": threshold, "outlier_share": float(outlier.mean()),
            "outliers": total, "images_with_outlier": float(outlier.any(axis=1).mean()),
            "outlier_max_over_median": float(patches.max() / median) if median > 0 else float("nan"),
            "border_share": float(grid_share[border].mean()), "interior_share": float(grid_share[~border].mean())
            if (~border).any() else float("nan"),
            "position_uniform_p": p_uniform, "cls_mean": float(cls.mean()),
            "cls_above_threshold": float((cls > threshold).mean())})
        shares.append(grid_share)
        means.append(patches.mean(axis=0).reshape(grid_size))
        c, e = np.histogram(patches, bins=bins, range=(0.0, float(patches.max()) or 1.0))
        counts.append(c)
        edges.append(e)
    settings = {"k": k, "threshold": "median + k * 1.4826 * MAD over the layer's patch tokens",
                "num_images": int(norms.shape[1]), "tokens_per_image": int(norms.shape[2]),
                "grid_size": list(grid_size), "bins": bins}
    return TokenStatsReport(layers=layers, position_share=np.stack(shares), position_norm=np.stack(means),
                            hist_counts=np.stack(counts), hist_edges=np.stack(edges), settings=settings)


def token_stats(model: MaskedAutoencoderViT, dataset: Dataset, *, parts: Sequence[str] = ("encoder",),
                k: float = DEFAULT_OUTLIER_DEVIATIONS, bins: int = 50, batch_size: int = 64, device: str | torch.device = "cpu",
                num_workers: int = 0, quiet: bool = False) -> TokenStatsReport:
    """Token-norm statistics of every block of ``parts`` over ``dataset`` (every patch visible): see the
    module docstring for the threshold and the position statistics."""
    from ..checkpoint.objects import as_model

    model = as_model(model)
    if bins < 1:
        raise ConfigError(f"histogram bins must be >= 1, got {bins}")
    outlier_threshold(np.zeros(1), k)  # check k before the pass
    names, norms = token_norms(model, dataset, parts=parts, batch_size=batch_size, device=device,
                               num_workers=num_workers, quiet=quiet)
    report = summarise_norms(names, norms, tuple(model.grid_size), k=k, bins=bins)
    report.settings.update(parts=list(parts), mask_ratio=0.0, features="block outputs before the final LayerNorm",
                           model=model.config.to_dict(), world_size=distributed.world_size(distributed.current()))
    return report
