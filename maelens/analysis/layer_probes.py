"""kNN and linear-probe accuracy of every encoder block's output, from one pass over the data.

MAE's linear probe (He et al. 2022) reads only the encoder's output, but what a layer's features
separate need not peak at the last block: probing every block shows where it does.
:func:`layer_features` records every block's
output in a single forward pass per batch and pools it four ways: mean of the patch tokens or the
CLS token, each raw (the block output) or through the encoder's final LayerNorm (the normalisation
the last block's output gets; applied to intermediate blocks as DINOv2's ``get_intermediate_layers``
does). :func:`probe_layers` then scores each (layer, pooling, norm) variant with the kNN vote and the
linear probe of :func:`maelens.analysis.evaluate.evaluate_features` (IPOL sec. 6: kNN with k = 20;
MAE's linear probe: BatchNorm without affine + linear layer), with the same splits and 95% Wilson
intervals as ``maelens evaluate``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ..errors import ConfigError, DataError
from ..models.mae import MaskedAutoencoderViT
from . import distributed
from .evaluate import MethodResult, check_methods, evaluate_features
from .features import FeatureSet, dataset_ids
from .layer_outputs import BlockRecorder, apply_final_norm, layer_names, pool_layer

PROBE_POOLS = ("mean", "cls")
#: The methods of :func:`evaluate_features` that make sense per layer (the 2-D maps do not).
PROBE_METHODS = ("knn", "pca-knn", "linear")

__all__ = ["PROBE_METHODS", "PROBE_POOLS", "LayerFeatures", "LayerProbeReport", "check_pools", "check_probe_methods",
           "layer_features", "probe_layers"]


@dataclass
class LayerFeatures:
    """Pooled features of every encoder block: ``sets[(layer, pool, norm)]`` is a :class:`FeatureSet`
    (N, D) for layer name ``layer``, pooling ``pool`` and ``norm`` (True: after the final LayerNorm)."""

    layers: list[str]
    sets: dict[tuple[str, str, bool], FeatureSet]

    def variants(self) -> list[tuple[str, str, bool]]:
        """The keys of :attr:`sets` in layer order."""
        return list(self.sets)


@torch.no_grad()
def layer_features(model: MaskedAutoencoderViT, dataset: Dataset, *, pools: Sequence[str] = PROBE_POOLS,
                   norms: Sequence[bool] = (False, True), mask_ratio: float = 0.0, masking: str = "random",
                   batch_size: int = 64, seed: int = 0, device: str | torch.device = "cpu", num_workers: int = 0,
                   quiet: bool = False) -> LayerFeatures:
    """Every encoder block's output over ``dataset`` (items ``(image, label)``), pooled by each of ``pools``
    (``mean``, ``cls``) with and/or without the final norm (``norms``), from one forward pass per batch
    (``mask_ratio=0``: the whole image, as ``maelens features``). Under a ``torch.distributed`` process
    group each rank runs a shard and every rank gets all rows in dataset order
    (:mod:`~maelens.analysis.distributed`)."""
    from ..checkpoint.objects import as_model

    model = as_model(model)
    pools, norms = list(dict.fromkeys(pools)), list(dict.fromkeys(bool(n) for n in norms))
    check_pools(pools)
    if not norms:
        raise ConfigError("layer probes need at least one norm setting (raw and/or after the final norm)")
    model = model.to(device).eval()
    names = layer_names(model, ("encoder",))

    def reduce(name: str, tokens: torch.Tensor) -> dict[tuple[str, bool], torch.Tensor]:
        variants = {}
        for norm in norms:
            t = apply_final_norm(model, name, tokens) if norm else tokens
            for pool in pools:
                variants[(pool, norm)] = pool_layer(t, pool).float().cpu()
        return variants

    chunks: dict[tuple[str, str, bool], list[torch.Tensor]] = {(n, p, m): [] for n in names for p in pools for m in norms}
    labels = []
    generator = torch.Generator().manual_seed(seed)
    group = distributed.current()
    loader, shard = distributed.shard_loader(dataset, batch_size, num_workers, group)
    distributed.skip_masks(generator, shard.skipped, masking, model.grid_size, mask_ratio)

    def run_shard() -> None:
        with BlockRecorder(model, ("encoder",), reduce=reduce) as rec:
            for imgs, target in tqdm(loader, desc="layer features", disable=distributed.quiet_here(quiet, group),
                                     unit="batch"):
                model.encode(imgs.to(device), mask_ratio, masking=masking, generator=generator)
                for name in names:
                    for (pool, norm), value in rec.outputs[name].items():
                        chunks[(name, pool, norm)].append(value)
                labels.append(np.asarray(target, dtype=np.int64).reshape(-1))

    distributed.synchronised(group, run_shard)
    if shard.num_images == 0:
        raise DataError("the dataset is empty: no features to extract")

    def rows(parts: list) -> np.ndarray:
        """This rank's rows of one variant (all rows for one process), then everyone's in dataset order."""
        local = torch.cat(parts).numpy() if parts else np.zeros((0,), np.float32)
        return distributed.gather_rows(group, local, shard.indices, shard.num_images)

    y = rows([torch.from_numpy(part) for part in labels])
    ids = dataset_ids(dataset)
    base = {"mask_ratio": mask_ratio, "masking": masking, "seed": seed, "model": model.config.to_dict(),
            "world_size": distributed.world_size(group)}
    sets = {key: FeatureSet(rows(parts), y, ids, {**base, "layer": key[0], "pool": key[1], "apply_norm": key[2]})
            for key, parts in chunks.items()}
    return LayerFeatures(layers=names, sets=sets)


def check_pools(pools: Sequence[str]) -> None:
    """Raise :class:`ConfigError` unless ``pools`` is a non-empty selection of :data:`PROBE_POOLS`."""
    bad = [p for p in pools if p not in PROBE_POOLS]
    if bad or not pools:
        raise ConfigError(f"layer probes pool by {', '.join(PROBE_POOLS)}, got {', '.join(pools) or 'none'}")


def check_probe_methods(methods: Sequence[str]) -> None:
    """Raise :class:`ConfigError` unless ``methods`` is a non-empty selection of :data:`PROBE_METHODS`."""
    check_methods(methods)
    other = [m for m in methods if m not in PROBE_METHODS]
    if other:
        raise ConfigError(f"layer probes run {', '.join(PROBE_METHODS)}, not {', '.join(other)}")


@dataclass
class LayerProbeReport:
    """Accuracy of each method on each (layer, pooling, norm) variant: ``rows`` of dicts with ``layer``,
    ``depth`` (1-based block index), ``pool``, ``norm`` and the :class:`MethodResult` fields."""

    rows: list[dict[str, Any]]
    settings: dict[str, Any] = field(default_factory=dict)

    def to_frame(self) -> Any:
        """pandas DataFrame, one row per (layer, pool, norm, method)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=["layer", "depth", "pool", "norm", "method", "accuracy", "ci_low",
                                                "ci_high", "n", "correct", "protocol"])

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON: settings and the rows."""
        return {**self.settings, "results": self.rows}

    def best(self) -> list[dict[str, Any]]:
        """Per (method, pool, norm), the row of the most accurate layer (the earliest on ties)."""
        best: dict[tuple, dict[str, Any]] = {}
        for row in self.rows:
            key = (row["method"], row["pool"], row["norm"])
            if key not in best or row["accuracy"] > best[key]["accuracy"]:
                best[key] = row
        return list(best.values())


def probe_layers(train: LayerFeatures, test: LayerFeatures | None = None, methods: Sequence[str] = ("knn", "linear"),
                 *, k: int | None = None, folds: int = 0, test_size: float = 0.25, seed: int = 0,
                 params: Mapping[str, Mapping[str, Any]] | None = None, device: str = "cpu",
                 quiet: bool = False, **options: Any) -> LayerProbeReport:
    """Score every variant of ``train`` (held-out part of it, or ``test`` when given, with the same
    variants) with ``methods`` through :func:`evaluate_features` (``k``, ``folds``, ``test_size``,
    ``seed``, ``params``, ``device`` and further ``options`` such as ``metric`` are passed on). Under a
    ``torch.distributed`` process group (every rank holding the same features) each rank scores a
    contiguous share of the variants and every rank gets all rows, in order: each variant is scored as
    in one process (:mod:`~maelens.analysis.distributed`)."""
    methods = list(methods)
    check_probe_methods(methods)
    if test is not None and test.variants() != train.variants():
        raise DataError("train and test layer features must hold the same layers and poolings")
    group = distributed.current()
    variants = train.variants()

    def score_mine() -> list[dict[str, Any]]:
        rows = []
        mine = [variants[i] for i in distributed.share(len(variants), group)]
        for key in tqdm(mine, desc="layer probes", disable=distributed.quiet_here(quiet, group), unit="variant"):
            layer, pool, norm = key
            report = evaluate_features(train.sets[key], test.sets[key] if test is not None else None, methods,
                                       k=k, folds=folds, test_size=test_size, seed=seed, params=params,
                                       device=device, quiet=True, **options)
            rows += [_row(layer, train.layers.index(layer) + 1, pool, norm, r) for r in report.results]
        return rows

    rows = [row for part in distributed.gather_objects(group, distributed.synchronised(group, score_mine))
            for row in part]
    settings = {"methods": methods, "layers": train.layers, "k": k, "folds": folds, "test_size": test_size,
                "seed": seed, "params": dict(params or {}), **options,
                "n_train": len(next(iter(train.sets.values()))),
                "n_test": len(next(iter(test.sets.values()))) if test is not None else None,
                "final_norm": "the encoder's final LayerNorm applied to each block's tokens before pooling",
                "world_size": distributed.world_size(group)}
    return LayerProbeReport(rows=rows, settings=settings)


def _row(layer: str, depth: int, pool: str, norm: bool, result: MethodResult) -> dict[str, Any]:
    return {"layer": layer, "depth": depth, "pool": pool, "norm": norm, **asdict(result)}
