"""Dataset-level attention statistics (IPOL sec. 5, Fig. 10): stream batches through the model
under an :class:`~maelens.analysis.hooks.AttentionRecorder`, reduce each layer's maps on the fly
and pool per-image counts, so memory does not grow with the number of images.

``attention_stats(model, dataset, masking="grid")`` returns an :class:`AttentionReport` with
``.to_frame()`` (one row per layer), ``.heads_frame()`` and ``.to_dict()`` (the JSON document of
``maelens attention-stats``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ..errors import ConfigError, DataError
from ..models.masking import masking_alias, sample_mask
from ..validation import check_grid
from . import distributed
from .attention import (
    attention_entropy,
    black_fraction,
    consistency,
    global_attention,
    importance,
    importance_ranks,
    influencers,
    locality,
    mean_attention_distance,
    patch_distances,
    positional_tests,
    ratio_interval,
    wilson_interval,
)
from .attention_records import DecoderLayerAttention, HeadAttention
from .hooks import AttentionChunk, AttentionRecorder

POSITIONAL_NULL = (
    "given each image's most-important set, importance ranks are assigned to its members uniformly at "
    "random: uniform over the visible positions for grid masking, over all positions for random masking"
)


@dataclass
class BatchAttention:
    """Per-image attention results of one batch: ``visible`` (B, N) bool; decoder ``ranks``,
    ``important`` (bool) and ``influencer`` (-1 = black), each (Ld, B, N); ``distance`` and
    ``entropy`` per part, (L, B, H)."""

    visible: torch.Tensor
    ranks: torch.Tensor
    important: torch.Tensor
    influencer: torch.Tensor
    distance: dict[str, torch.Tensor]
    entropy: dict[str, torch.Tensor]

    def cpu(self) -> "BatchAttention":
        """The same results on the CPU (small tensors; pooling runs in float64 there)."""
        return BatchAttention(visible=self.visible.cpu(), ranks=self.ranks.cpu(), important=self.important.cpu(),
                              influencer=self.influencer.cpu(),
                              distance={part: t.cpu() for part, t in self.distance.items()},
                              entropy={part: t.cpu() for part, t in self.entropy.items()})


@dataclass
class InfluenceFields:
    """Influence fields of a few images (Fig. 9): ``ranks``, ``influencer`` (Ld, B, N), ``visible``
    (B, N), on a patch grid ``grid_size``; ``indices`` are the images' dataset positions."""

    ranks: np.ndarray
    influencer: np.ndarray
    visible: np.ndarray
    grid_size: tuple[int, int]
    indices: np.ndarray

    @property
    def consistent(self) -> np.ndarray:
        """(Ld, B) bool: most-important patches equal the visible ones."""
        k = self.visible.sum(-1)
        return ((self.ranks < k[None, :, None]) == self.visible[None]).all(-1)


def _check_model(model: torch.nn.Module, top_n: int = 1) -> None:
    if top_n < 1:
        raise ConfigError(f"top_n must be at least 1, got {top_n}")
    if not getattr(model, "has_decoder", False):
        raise ConfigError(
            "this model has no decoder (encoder-only weights): the decoder attention metrics of IPOL "
            "sec. 5 need a full MAE checkpoint"
        )


def _reducer(model: torch.nn.Module, encoder_positions: torch.Tensor | None, device: torch.device):
    cfg = model.config
    n = cfg.num_patches
    dec_dist = patch_distances(torch.arange(n, device=device), cfg.grid_size, cfg.patch_size)
    enc_dist = None if encoder_positions is None else patch_distances(encoder_positions, cfg.grid_size, cfg.patch_size)

    def reduce(chunk: AttentionChunk) -> dict[str, torch.Tensor]:
        dist = dec_dist if chunk.part == "decoder" else enc_dist[chunk.rows]
        out = {"distance": mean_attention_distance(chunk.probs, dist),
               "entropy": attention_entropy(chunk.probs, chunk.logits)}
        if chunk.part == "decoder":
            out["W"] = global_attention(chunk.probs)
        return out

    return reduce


@torch.no_grad()
def analyse_batch(model: torch.nn.Module, imgs: torch.Tensor, *, masking: str = "grid", mask_ratio: float = 0.75,
                  generator: torch.Generator | None = None, top_n: int = 5, encoder: bool = False,
                  include_self: bool = True, mask: str | None = None) -> BatchAttention:
    """Mask ``imgs`` (B, 3, S, S), run encoder and decoder under hooks and compute every per-image
    quantity of sec. 5 for all decoder layers at once. (``mask``: the former name of ``masking``.)"""
    masking = masking_alias(masking, mask, default="grid")
    _check_model(model, top_n)
    generator = generator if generator is not None else torch.Generator()
    cfg = model.config
    positions = None
    if encoder:
        # Draw the masks once on a copy of the generator state to know each visible token's
        # patch position while the encoder hooks run; the model then draws the same masks.
        state = generator.get_state()
        ids = sample_mask(masking, imgs.shape[0], cfg.grid_size, mask_ratio, generator=generator, device=imgs.device)
        generator.set_state(state)
        positions = ids.ids_keep
    parts = ("encoder", "decoder") if encoder else ("decoder",)
    with AttentionRecorder(model, parts, reduce=_reducer(model, positions, imgs.device)) as rec:
        out = model.encode(imgs, mask_ratio, masking=masking, generator=generator)
        model.forward_decoder(out.tokens, out.ids_restore)
    visible = out.mask == 0
    W = torch.stack([m["W"] for m in rec.maps["decoder"]])
    ranks = importance_ranks(importance(W))
    important = ranks < visible.sum(-1)[None, :, None]
    return BatchAttention(
        visible=visible, ranks=ranks, important=important,
        influencer=influencers(W, important, top_n, include_self),
        distance={part: torch.stack([m["distance"] for m in rec.maps[part]]) for part in parts},
        entropy={part: torch.stack([m["entropy"] for m in rec.maps[part]]) for part in parts},
    )


def _moments(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> np.ndarray:
    """(L, B) successes, trials, weights -> (5, L): Σwx, Σwy, Σwx², Σwy², Σwxy."""
    x, y, w = x.double(), y.double(), w.double()
    return torch.stack([(w * x).sum(-1), (w * y).sum(-1), (w * x * x).sum(-1), (w * y * y).sum(-1),
                        (w * x * y).sum(-1)]).numpy()


class AttentionAccumulator:
    """Pools :class:`BatchAttention` results over batches; memory is O(layers x patches²).

    Locality and black fraction of a layer are pooled over the images that are fully consistent at
    that layer (the paper's choice), or over all images with ``all_images=True``; consistency and
    the positional test use all images. The paper does not say what the black proportion divides by
    (sec. 5, Fig. 10), so both are reported: ``black_fraction`` = black / non-important patches (the
    patches that can be black; the one the layer-curve figure,
    :func:`~maelens.plots.attention.plot_layer_curves`, draws) and ``black_fraction_of_all`` = black / all
    patches of the same images. Proportions over patches get the design-effect Wilson
    interval of :func:`~maelens.analysis.attention.ratio_interval`, consistency the plain one.
    """

    def __init__(self, grid_size: tuple[int, int], num_layers: int, *, all_images: bool = False):
        self.grid_size = tuple(grid_size)
        self.num_layers = num_layers
        self.all_images = all_images
        n = grid_size[0] * grid_size[1]
        self.images = 0
        self.consistent = np.zeros(num_layers, np.int64)
        self.moments = {key: np.zeros((5, num_layers)) for key in ("soft", "locality", "black", "black_all")}
        self.filtered_images = np.zeros(num_layers, np.int64)
        self.rank_counts = np.zeros((num_layers, n, n), np.int64)
        self.rank_expected = np.zeros((num_layers, n, n))
        self.max_rank = 0
        self.head_sums: dict[str, np.ndarray] = {}

    def update(self, batch: BatchAttention) -> None:
        """Add one batch of per-image results."""
        batch = batch.cpu()
        n_layers, b, n = batch.ranks.shape
        k = batch.visible.sum(-1)
        self.images += b
        consistent = consistency(batch.important, batch.visible)
        self.consistent += consistent.sum(-1).numpy()
        overlap = (batch.important & batch.visible).sum(-1)
        self.moments["soft"] += _moments(overlap, k.expand(n_layers, b), torch.ones_like(overlap))
        weight = torch.ones_like(consistent) if self.all_images else consistent
        self.filtered_images += weight.sum(-1).numpy()
        self.moments["locality"] += _moments(*locality(batch.influencer, batch.important, self.grid_size), weight)
        black, non_important = black_fraction(batch.influencer, batch.important)
        self.moments["black"] += _moments(black, non_important, weight)
        self.moments["black_all"] += _moments(black, torch.full_like(black, n), weight)
        layer = torch.arange(n_layers)[:, None, None]
        position = torch.arange(n)
        flat = ((layer * n + batch.ranks) * n + position)[batch.important]
        self.rank_counts += torch.bincount(flat, minlength=n_layers * n * n).reshape(n_layers, n, n).numpy()
        rank_exists = (position[None, :] < k[:, None]).double()
        share = batch.important.double() / k.clamp(min=1)[None, :, None]
        self.rank_expected += torch.einsum("br,lbp->lrp", rank_exists, share).numpy()
        self.max_rank = max(self.max_rank, int(k.max()))
        for part in batch.distance:
            sums = torch.stack([batch.distance[part].double().sum(1), batch.entropy[part].double().sum(1)])
            self.head_sums[part] = self.head_sums.get(part, 0) + sums.numpy()

    def all_reduce(self, group: distributed.Group | None) -> None:
        """Sum the counts (int64) and moments (float64) of every rank of ``group``, so each rank holds the
        statistics of all images (:mod:`~maelens.analysis.distributed`); nothing to do for one process."""
        if group is None:
            return
        state = {"images": np.int64(self.images), "consistent": self.consistent,
                 "filtered_images": self.filtered_images, "rank_counts": self.rank_counts,
                 "rank_expected": self.rank_expected,
                 **{f"moments.{key}": value for key, value in self.moments.items()},
                 **{f"heads.{part}": value for part, value in self.head_sums.items()}}
        total = distributed.reduce_sums(group, state)
        self.images = int(total["images"])
        self.consistent, self.filtered_images = total["consistent"], total["filtered_images"]
        self.rank_counts, self.rank_expected = total["rank_counts"], total["rank_expected"]
        self.moments = {key: total[f"moments.{key}"] for key in self.moments}
        self.head_sums = {key.split(".", 1)[1]: value for key, value in total.items() if key.startswith("heads.")}
        self.max_rank = distributed.reduce_max(group, self.max_rank)

    def _head_stats(self, part: str) -> list[HeadAttention]:
        distance, entropy = self.head_sums[part] / max(self.images, 1)
        return [HeadAttention(layer=layer, mean_attention_distance=float(distance[layer].mean()),
                              entropy=float(entropy[layer].mean()),
                              head_mean_attention_distance=distance[layer].tolist(),
                              head_entropy=entropy[layer].tolist())
                for layer in range(distance.shape[0])]

    def _decoder_layer(self, layer: int, heads: HeadAttention) -> DecoderLayerAttention:
        row: dict[str, Any] = {"layer": layer, "images": self.images,
                               "consistency": float(self.consistent[layer] / self.images) if self.images else math.nan,
                               "consistency_ci": list(wilson_interval(self.consistent[layer], self.images)),
                               "consistent_images": int(self.consistent[layer])}
        names = {"soft": ("soft_consistency", None, None),
                 "locality": ("locality", "local_patches", "influenced_patches"),
                 "black": ("black_fraction", "black_patches", "non_important_patches"),
                 "black_all": ("black_fraction_of_all", None, None)}
        for key, (name, num, den) in names.items():
            sx, sy, sxx, syy, sxy = self.moments[key][:, layer]
            _, low, high = ratio_interval(sx, sy, sxx, syy, sxy)
            row[name] = float(sx / sy) if sy > 0 else math.nan
            row[f"{name}_ci"] = [low, high]
            if num:
                row[num], row[den] = int(round(sx)), int(round(sy))
        row["locality_images"] = int(self.filtered_images[layer])
        row.update({key: value for key, value in heads.to_dict().items() if key != "layer"})
        return DecoderLayerAttention(**row)

    def _positional_bias(self) -> tuple[dict[str, Any], np.ndarray]:
        counts = self.rank_counts[:, :self.max_rank]
        layers = []
        for layer in range(self.num_layers):
            tests = positional_tests(counts[layer], self.rank_expected[layer, :self.max_rank])
            entry: dict[str, Any] = {"layer": layer}
            for test in ("ks", "chi2"):
                p = tests[f"{test}_p"]
                finite = p[np.isfinite(p)]
                bonferroni = float(min(1.0, finite.min() * finite.size)) if finite.size else math.nan
                entry[f"{test}_min_p_bonferroni"] = bonferroni
            entry.update({key: value.tolist() for key, value in tests.items()})
            entry["counts"] = counts[layer].tolist()
            layers.append(entry)
        return {"null": POSITIONAL_NULL, "images": self.images, "layers": layers}, counts

    def report(self, settings: dict[str, Any]) -> "AttentionReport":
        """The pooled statistics as an :class:`AttentionReport`."""
        decoder_heads = self._head_stats("decoder")
        layers = [self._decoder_layer(layer, decoder_heads[layer]) for layer in range(self.num_layers)]
        encoder_layers = self._head_stats("encoder") if "encoder" in self.head_sums else []
        bias, counts = self._positional_bias()
        return AttentionReport(settings=dict(settings, num_images=self.images), layers=layers,
                               encoder_layers=encoder_layers, positional_bias=bias, positional_counts=counts)


_FRAME_COLUMNS = (
    "images", "consistency", "consistent_images", "soft_consistency", "locality", "local_patches",
    "influenced_patches", "locality_images", "black_fraction", "black_patches", "non_important_patches",
    "black_fraction_of_all",
)

_COUNT_COLUMNS = ("images", "consistent_images", "local_patches", "influenced_patches", "locality_images",
                  "black_patches", "non_important_patches")


@dataclass
class AttentionReport:
    """Result of :func:`attention_stats`: per decoder layer ``layers`` (:class:`DecoderLayerAttention`),
    ``encoder_layers`` (:class:`HeadAttention`: distance/entropy only, empty unless asked), ``positional_bias`` (JSON-ready), the rank x
    position counts (Ld, k, N) and, for a few images, their :class:`InfluenceFields`."""

    settings: dict[str, Any]
    layers: list[DecoderLayerAttention]
    encoder_layers: list[HeadAttention]
    positional_bias: dict[str, Any]
    positional_counts: np.ndarray
    examples: InfluenceFields | None = field(default=None)

    def to_frame(self) -> "Any":
        """pandas DataFrame, one row per layer (decoder first, then encoder), CIs as _low/_high."""
        import pandas as pd

        rows = []
        for layer, bias in zip(self.layers, self.positional_bias["layers"]):
            row = {"part": "decoder", "layer": layer.layer}
            fields = layer.to_dict()
            for name in _FRAME_COLUMNS:
                row[name] = fields[name]
                if f"{name}_ci" in fields:
                    row[f"{name}_low"], row[f"{name}_high"] = fields[f"{name}_ci"]
            row["mean_attention_distance"] = layer.mean_attention_distance
            row["entropy"] = layer.entropy
            row["positional_ks_p"] = bias["ks_min_p_bonferroni"]
            row["positional_chi2_p"] = bias["chi2_min_p_bonferroni"]
            rows.append(row)
        for layer in self.encoder_layers:
            rows.append({"part": "encoder", "layer": layer.layer,
                         "mean_attention_distance": layer.mean_attention_distance, "entropy": layer.entropy})
        return pd.DataFrame(rows).astype({name: "Int64" for name in _COUNT_COLUMNS})

    def heads_frame(self) -> "Any":
        """pandas DataFrame, one row per (part, layer, head): mean attention distance and entropy."""
        import pandas as pd

        rows = [{"part": part, "layer": layer.layer, "head": head, "mean_attention_distance": d, "entropy": e}
                for part, layers in (("decoder", self.layers), ("encoder", self.encoder_layers))
                for layer in layers
                for head, (d, e) in enumerate(zip(layer.head_mean_attention_distance, layer.head_entropy))]
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document: settings, ``layers``, ``encoder_layers`` and ``positional_bias``."""
        out = dict(self.settings)
        out["layers"] = [layer.to_dict() for layer in self.layers]
        if self.encoder_layers:
            out["encoder_layers"] = [layer.to_dict() for layer in self.encoder_layers]
        out["positional_bias"] = self.positional_bias
        return out


def _images(batch: Any) -> torch.Tensor:
    return batch[0] if isinstance(batch, (list, tuple)) else batch


def _fields(batch: BatchAttention, grid_size: tuple[int, int], count: int) -> InfluenceFields:
    return InfluenceFields(ranks=batch.ranks[:, :count].cpu().numpy(),
                           influencer=batch.influencer[:, :count].cpu().numpy(),
                           visible=batch.visible[:count].cpu().numpy(), grid_size=tuple(grid_size),
                           indices=np.arange(min(count, batch.visible.shape[0])))


@torch.no_grad()
def attention_stats(model: torch.nn.Module, dataset: Dataset, *, masking: str = "grid", mask_ratio: float = 0.75,
                    top_n: int = 5, encoder: bool = False, all_images: bool = False, include_self: bool = True,
                    batch_size: int = 64, seed: int = 0, device: str | torch.device = "cpu",
                    num_workers: int = 0, num_examples: int = 4, quiet: bool = True,
                    mask: str | None = None) -> AttentionReport:
    """IPOL sec. 5 attention statistics of ``model`` over ``dataset`` (items ``(image, label)``): per decoder
    layer the consistency, soft consistency, locality and black-patch proportions (sec. 5, Figs. 9-10), the
    heads' attention distance and entropy, and the positional-bias tests of the importance ranks.

    Args:
        model: an MAE with a decoder (an encoder-only model: see :func:`~maelens.analysis.encoder_attention.
            encoder_attention_stats`); a transformers ``ViTMAEForPreTraining`` in hand is converted exactly
            (:func:`maelens.checkpoint.objects.as_model`, as every analysis does with its model).
        dataset: items ``(image, label)`` or images, normalised as the model expects.
        masking: the masking strategy (``grid``: the paper's deterministic one; ``random``, ``block``,
            ``uniform``); ``mask`` is its former name, still accepted.
        mask_ratio: the share of patches removed.
        top_n: attention entries of a row searched for its influencer (the paper's top-5).
        encoder: also report the encoder's head statistics.
        all_images: pool locality and black proportions over all images, not only the consistent ones.
        include_self: whether a row's own (diagonal) entry counts among its top-n.
        batch_size: images per forward pass (the results do not depend on it).
        seed: seeds the masks; the same call gives the same report.
        device: where the model runs.
        num_workers: data-loader processes.
        num_examples: the first images whose influence fields are kept in ``report.examples`` (Fig. 9).
        quiet: no progress bar.

    Returns:
        An :class:`AttentionReport` (typed per-layer records, ``to_frame``, ``to_dict``), the same on every
        rank of a ``torch.distributed`` process group, where each rank analyses a shard of the images and
        the counts and sums are reduced exactly (:mod:`~maelens.analysis.distributed`).
    """
    from ..checkpoint.objects import as_model

    model = as_model(model)
    check_grid(model.config.grid_size, "attention locality and consistency")  # a 1x1 grid gives "perfect" or NaN values (issue 30)
    masking = masking_alias(masking, mask, default="grid")
    _check_model(model, top_n)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    model = model.to(device).eval()
    cfg = model.config
    generator = torch.Generator().manual_seed(seed)
    group = distributed.current()
    loader, shard = distributed.shard_loader(dataset, batch_size, num_workers, group)
    distributed.skip_masks(generator, shard.skipped, masking, cfg.grid_size, mask_ratio)
    acc = AttentionAccumulator(cfg.grid_size, cfg.decoder_depth, all_images=all_images)
    examples: list[InfluenceFields] = []

    def analyse_shard() -> None:
        for batch in tqdm(loader, desc="attention", disable=distributed.quiet_here(quiet, group), unit="batch"):
            result = analyse_batch(model, _images(batch).to(device), masking=masking, mask_ratio=mask_ratio,
                                   generator=generator, top_n=top_n, encoder=encoder, include_self=include_self)
            if not examples and num_examples > 0:
                examples.append(_fields(result, cfg.grid_size, num_examples))
            acc.update(result)

    distributed.synchronised(group, analyse_shard)
    acc.all_reduce(group)
    if acc.images == 0:
        raise DataError("the dataset is empty: no attention to analyse")
    settings = {"mask": masking, "mask_ratio": mask_ratio, "top_n": top_n, "all_images": all_images,
                "include_self": include_self, "seed": seed, "model": cfg.name,
                "grid_size": list(cfg.grid_size), "patch_size": cfg.patch_size,
                "world_size": distributed.world_size(group)}
    report = acc.report(settings)
    # the examples are the first images, in the first batch: rank 0's
    report.examples = distributed.broadcast(group, examples[0] if examples else None)
    return report


@torch.no_grad()
def influence_fields(model: torch.nn.Module, images: torch.Tensor, *, masking: str = "grid", mask_ratio: float = 0.75,
                     top_n: int = 5, seed: int = 0, include_self: bool = True,
                     mask: str | None = None) -> InfluenceFields:
    """Influence fields (Fig. 9) of ``images`` (B, 3, S, S) or one image (3, S, S), every decoder layer.
    (``mask``: the former name of ``masking``.)"""
    from ..checkpoint.objects import as_model

    model = as_model(model)
    check_grid(model.config.grid_size, "influence maps")  # a 1x1 grid gives "perfect" or NaN values (issue 30)
    masking = masking_alias(masking, mask, default="grid")
    _check_model(model, top_n)
    if images.ndim == 3:
        images = images.unsqueeze(0)
    device = next(model.parameters()).device
    result = analyse_batch(model.eval(), images.to(device), masking=masking, mask_ratio=mask_ratio,
                           generator=torch.Generator().manual_seed(seed), top_n=top_n, include_self=include_self)
    return _fields(result, model.config.grid_size, images.shape[0])

__all__ = ["AttentionAccumulator", "AttentionReport", "BatchAttention", "InfluenceFields", "POSITIONAL_NULL",
    "analyse_batch", "attention_stats", "influence_fields"]
