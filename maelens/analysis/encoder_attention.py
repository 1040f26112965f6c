"""Mean attention distance and entropy of every encoder head over a dataset, for any encoder: an MAE's,
or one without a decoder (fine-tuned and linear-probe files, timm ViTs). This is the encoder part of
``maelens attention-stats --encoder``; the decoder metrics of IPOL sec. 5 need a decoder and live in
:mod:`maelens.analysis.attention_dataset`.

Per image and head: the attention-weighted distance in pixels between the centres of the visible
patches (Dosovitskiy et al. 2021, Fig. 7) and the entropy of the patch queries' rows, each averaged over
the queries (:mod:`maelens.analysis.attention`); then averaged over the images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ..errors import ConfigError, DataError
from ..models.masking import masking_alias, sample_mask
from ..validation import check_grid
from . import distributed
from .attention import attention_entropy, mean_attention_distance, patch_distances
from .attention_records import HeadAttention
from .hooks import AttentionChunk, AttentionRecorder


@dataclass
class EncoderAttentionReport:
    """Result of :func:`encoder_attention_stats`: ``settings`` and, per encoder layer, a
    :class:`~maelens.analysis.attention_records.HeadAttention` (``layer``, head means of
    ``mean_attention_distance`` and ``entropy``, and their per-head lists), as ``AttentionReport.encoder_layers``."""

    settings: dict[str, Any]
    encoder_layers: list[HeadAttention]

    def to_frame(self) -> Any:
        """pandas DataFrame, one row per encoder layer."""
        import pandas as pd

        return pd.DataFrame([{"part": "encoder", "layer": row.layer,
                              "mean_attention_distance": row.mean_attention_distance, "entropy": row.entropy}
                             for row in self.encoder_layers])

    def heads_frame(self) -> Any:
        """pandas DataFrame, one row per (layer, head): mean attention distance and entropy."""
        import pandas as pd

        return pd.DataFrame([{"part": "encoder", "layer": row.layer, "head": head, "mean_attention_distance": d,
                              "entropy": e}
                             for row in self.encoder_layers
                             for head, (d, e) in enumerate(zip(row.head_mean_attention_distance, row.head_entropy))])

    def to_dict(self) -> dict[str, Any]:
        """The JSON document: the settings and ``encoder_layers``."""
        return {**self.settings, "encoder_layers": [row.to_dict() for row in self.encoder_layers]}


@torch.no_grad()
def encoder_attention_stats(model: torch.nn.Module, dataset: Dataset, *, masking: str = "random",
                            mask_ratio: float = 0.0, batch_size: int = 64, seed: int = 0,
                            device: str | torch.device = "cpu", num_workers: int = 0,
                            quiet: bool = True, mask: str | None = None) -> EncoderAttentionReport:
    """Mean attention distance and entropy of every head of every encoder layer of ``model`` over
    ``dataset`` (items ``(image, label)``), with ``masking`` / ``mask_ratio`` applied to the encoder input
    (0: the whole image; ``mask`` is the former name of ``masking``). Masks come from a generator seeded
    with ``seed``. Under a ``torch.distributed`` process group each rank runs a shard and the float64
    sums are reduced (:mod:`~maelens.analysis.distributed`)."""
    from ..checkpoint.objects import as_model

    model = as_model(model)
    check_grid(model.config.grid_size, "attention distances")  # a 1x1 grid gives "perfect" or NaN values (issue 30)
    masking = masking_alias(masking, mask, default="random")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    cfg, generator = model.config, torch.Generator().manual_seed(seed)
    model = model.to(device).eval()
    group = distributed.current()
    loader, shard = distributed.shard_loader(dataset, batch_size, num_workers, group)
    distributed.skip_masks(generator, shard.skipped, masking, cfg.grid_size, mask_ratio)
    totals: dict[str, Any] = {"images": np.int64(0)}  # "sums": (layers, 2, heads) distance and entropy summed

    def run_shard() -> None:
        sums, images = None, 0
        for batch in tqdm(loader, desc="encoder attention", disable=distributed.quiet_here(quiet, group),
                          unit="batch"):
            imgs = (batch[0] if isinstance(batch, (list, tuple)) else batch).to(device)
            # the patch position of each visible token: draw the masks on a copy of the generator state,
            # then let the encoder draw the same ones
            state = generator.get_state()
            kept = sample_mask(masking, imgs.shape[0], cfg.grid_size, mask_ratio, generator=generator,
                               device=imgs.device).ids_keep
            generator.set_state(state)
            distances = patch_distances(kept, cfg.grid_size, cfg.patch_size)  # (B, K, K) pixels

            def reduce(chunk: AttentionChunk, distances: torch.Tensor = distances) -> torch.Tensor:
                # (b, 2, H): per image and head, distance and entropy averaged over the patch queries
                return torch.stack([mean_attention_distance(chunk.probs, distances[chunk.rows]),
                                    attention_entropy(chunk.probs, chunk.logits)], dim=1)

            with AttentionRecorder(model, ("encoder",), reduce=reduce) as rec:
                model.encode(imgs, mask_ratio, masking=masking, generator=generator)
            batch_sums = torch.stack(rec.maps["encoder"]).double().sum(dim=1)  # (layers, 2, heads)
            sums = batch_sums if sums is None else sums + batch_sums
            images += imgs.shape[0]
        if sums is not None:
            totals.update(sums=sums, images=np.int64(images))

    distributed.synchronised(group, run_shard)
    totals = distributed.reduce_sums(group, totals)
    sums, images = totals.get("sums"), int(totals["images"])
    if sums is None:
        raise DataError("the dataset is empty: no attention to analyse")
    means = (sums / images).cpu().numpy()
    layers = [HeadAttention(layer=layer, mean_attention_distance=float(np.mean(means[layer, 0])),
                            entropy=float(np.mean(means[layer, 1])),
                            head_mean_attention_distance=means[layer, 0].tolist(),
                            head_entropy=means[layer, 1].tolist()) for layer in range(means.shape[0])]
    settings = {"mask": masking, "mask_ratio": mask_ratio, "seed": seed, "model": cfg.name, "num_images": images,
                "grid_size": list(cfg.grid_size), "patch_size": cfg.patch_size, "world_size": distributed.world_size(group)}
    return EncoderAttentionReport(settings=settings, encoder_layers=layers)


__all__ = ["EncoderAttentionReport", "encoder_attention_stats"]
