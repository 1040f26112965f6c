"""Encoder feature extraction over a dataset, cached to ``.npz`` so later steps don't re-run the model.

Pooling of the encoder output (IPOL sec. 6 uses the encoder output directly; MAE's linear probe
uses the mean of patch tokens or the CLS token): ``mean`` of visible patch tokens, ``cls``,
``flatten`` (all visible patch tokens concatenated), ``tokens`` (kept as (N, K, D) for the
attentive probe and per-sample distribution fits), ``head``: the feature a fine-tuned encoder's
classifier was trained on (official ``--global_pool``: mean of the patch tokens then ``fc_norm``; else
the CLS token after the final norm; timm: its ``global_pool``), and ``auto``: ``head`` for a fine-tuned
encoder, ``mean`` otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..choices import FEATURE_POOLS
from ..data.checks import check_labels, check_npz_sizes
from ..errors import DataError
from ..io import save_npz
from ..paths import check_input
from ..validation import check_batch_bytes, shown
from . import distributed

if TYPE_CHECKING:  # torch is imported by the functions that run a model: reading features needs numpy only
    import torch
    from torch.utils.data import Dataset

    from ..models.mae import MaskedAutoencoderViT



def check_feature_rows(features: np.ndarray, where: str | Path) -> None:
    """Raise :class:`DataError` naming ``where`` for features no analysis can use: not numbers, no rows,
    or rows holding NaN or infinite values (counted, with the first, so the user can find them); checked
    when a file is read, so a bad file fails at once instead of as a NaN deep inside a fit."""
    if not (np.issubdtype(features.dtype, np.integer) or np.issubdtype(features.dtype, np.floating)):
        raise DataError(f"{where}: features must be numbers, got an array of {features.dtype}")
    if features.shape[0] == 0:
        raise DataError(f"{where}: holds no feature rows (features of shape {features.shape})")
    bad = ~np.isfinite(features.reshape(features.shape[0], -1)).all(axis=1)
    if bad.any():
        raise DataError(f"{where}: {int(bad.sum())} of {len(bad)} feature rows hold NaN or infinite values "
                        f"(first: row {int(np.argmax(bad))})")


@dataclass
class FeatureSet:
    """Features of N images: ``features`` (N, F) or (N, K, D) for ``tokens``; ``labels`` (N,) int64
    (-1 where unknown); ``ids`` (N,) image identifiers; ``settings`` how they were extracted."""

    features: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.features.shape[0])

    @property
    def dim(self) -> int:
        return int(np.prod(self.features.shape[1:]))

    def flat(self) -> np.ndarray:
        """(N, F) view whatever the pooling."""
        return self.features.reshape(len(self), -1)

    def save(self, path: str | Path) -> Path:
        """Write atomically to ``.npz`` (plain arrays; settings as a JSON string, nothing pickled)."""
        return save_npz(path, features=self.features, labels=self.labels, ids=self.ids.astype(str),
                        settings=np.array(json.dumps(self.settings)))

    @classmethod
    def load(cls, path: str | Path) -> "FeatureSet":
        """Read a file written by :meth:`save` (or any .npz with ``features`` and optional ``labels``)."""
        path = check_input(path, "feature file", directory=False)
        check_npz_sizes(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                if "features" not in data:
                    raise DataError(f"{path}: no 'features' array (found: {', '.join(data.files)})")
                feats = data["features"]
                n = feats.shape[0]
                labels = check_labels(data["labels"], n, str(path)) if "labels" in data else np.full(n, -1, np.int64)
                ids = data["ids"] if "ids" in data else np.arange(n).astype(str)
                settings = json.loads(str(data["settings"])) if "settings" in data else {}
        except DataError:
            raise
        except Exception as err:
            raise DataError(f"{path}: not a readable .npz feature file ({err.__class__.__name__}: {err})") from err
        if feats.ndim < 2 or labels.shape != (n,) or ids.shape != (n,):
            raise DataError(f"{path}: expected features (N, F) with labels and ids of length N, "
                            f"got features {feats.shape}, labels {labels.shape}, ids {ids.shape}")
        check_feature_rows(feats, path)
        check_settings(settings, path)
        return cls(features=feats.astype(np.float32, copy=False), labels=labels, ids=ids, settings=settings)


def check_settings(settings: Any, path: Path) -> None:
    """The ``settings`` record of a feature file: a JSON object whose ``classes``, when present, is a list of class
    names (what evaluate checks labels and other files against, issue 30)."""
    if not isinstance(settings, dict):
        raise DataError(f"{path}: 'settings' must be a JSON object, got {type(settings).__name__}")
    classes = settings.get("classes")
    if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise DataError(f"{path}: 'settings' field 'classes' must be a list of class names, got {shown(classes)}")


def resolve_pool(model: MaskedAutoencoderViT, pool: str) -> str:
    """The pooling ``pool`` stands for: ``auto`` is ``head`` for a fine-tuned encoder (the feature its
    classifier was trained on), ``mean`` otherwise; ``head`` needs a fine-tuned encoder."""
    if pool not in FEATURE_POOLS:
        raise DataError(f"unknown pooling {pool!r}; choose one of {', '.join(FEATURE_POOLS)}")
    head = getattr(model, "encoder_head", None)
    if pool == "auto":
        return "head" if head is not None else "mean"
    if pool == "head" and head is None:
        raise DataError("pool 'head' is the pooled feature of a fine-tuned encoder, and this model was not "
                        "fine-tuned: use mean or cls")
    return pool


def pool_tokens(tokens: torch.Tensor, pool: str) -> torch.Tensor:
    """(B, 1+K, D) encoder output (CLS first) -> pooled features (``head`` needs the model: see
    :meth:`MaskedAutoencoderViT.pool_features`)."""
    if pool == "mean":
        return tokens[:, 1:].mean(dim=1)
    if pool == "cls":
        return tokens[:, 0]
    if pool == "flatten":
        return tokens[:, 1:].flatten(1)
    if pool == "tokens":
        return tokens[:, 1:]
    raise DataError(f"unknown pooling {pool!r}; choose one of {', '.join(FEATURE_POOLS)}")


def extract_features(model: MaskedAutoencoderViT, dataset: Dataset, *, mask_ratio: float = 0.0,
                     masking: str = "random", pool: str = "auto", apply_norm: bool = True,
                     batch_size: int = 64, seed: int = 0, device: str | torch.device = "cpu",
                     num_workers: int = 0, quiet: bool = False) -> FeatureSet:
    """Run the encoder over ``dataset`` (items ``(image, label)``) and pool its output.

    ``model``: a maelens model, or a timm / transformers ViT object in hand, converted exactly as its saved
    file would be (:func:`maelens.checkpoint.objects.as_model`).

    Masks are drawn from a generator seeded with ``seed``, so the same call gives the same features.
    ``pool`` is one of :data:`~maelens.choices.FEATURE_POOLS`; the settings record the pooling used (``pool``), the one asked for
    (``pool_requested``) and, for ``head``, how the fine-tuned model pools (``pooling``). A SimCLR model
    (:class:`~maelens.models.simclr.SimCLR`) gives its pooled backbone feature h, as SimCLR evaluates it
    (the projection head is not used): ``pool`` must be ``auto`` and ``mask_ratio`` 0. Under a
    ``torch.distributed`` process group each rank encodes a shard and every rank gets all features in
    dataset order, identical to one process's (:mod:`~maelens.analysis.distributed`).
    """
    from ..checkpoint.objects import as_model

    model = as_model(model)
    if getattr(model, "method", "mae") == "simclr":
        return _simclr_features(model, dataset, mask_ratio=mask_ratio, pool=pool, batch_size=batch_size,
                                seed=seed, device=device, num_workers=num_workers, quiet=quiet)
    requested, pool = pool, resolve_pool(model, pool)
    if pool == "head" and not apply_norm:
        raise DataError("pool 'head' is defined on the normalised encoder output: it cannot be combined with "
                        "apply_norm=False")
    model = model.to(device).eval()
    import torch

    generator = torch.Generator().manual_seed(seed)

    def encode(imgs: torch.Tensor) -> torch.Tensor:
        out = model.encode(imgs.to(device), mask_ratio, masking=masking, generator=generator, apply_norm=apply_norm)
        return model.pool_features(out.tokens) if pool == "head" else pool_tokens(out.tokens, pool)

    def skip(sizes: list[int]) -> None:
        distributed.skip_masks(generator, sizes, masking, model.grid_size, mask_ratio)

    features, labels = _over_batches(encode, dataset, batch_size, num_workers, quiet, skip)
    settings = {"mask_ratio": mask_ratio, "masking": masking, "pool": pool, "pool_requested": requested,
                "apply_norm": apply_norm, "seed": seed, "model": model.config.to_dict(),
                "world_size": distributed.world_size(distributed.current())}
    if pool == "head":
        settings["pooling"] = f"fine-tuned feature: {model.encoder_head.describe()}"
    return FeatureSet(features=features, labels=labels, ids=dataset_ids(dataset), settings=settings)


def _simclr_features(model, dataset: Dataset, *, mask_ratio: float, pool: str, batch_size: int, seed: int,
                     device: str | torch.device, num_workers: int, quiet: bool) -> FeatureSet:
    """The backbone features h (N, feature_dim) of a SimCLR model."""
    if pool != "auto":
        raise DataError(f"pool {pool!r} pools ViT tokens; a SimCLR model gives its pooled backbone feature "
                        f"(use pool 'auto')")
    if mask_ratio != 0:
        raise DataError(f"a SimCLR model sees whole images: mask ratio must be 0, got {mask_ratio:g}")
    model = model.to(device).eval()
    features, labels = _over_batches(lambda imgs: model.features(imgs.to(device)), dataset, batch_size,
                                     num_workers, quiet)
    settings = {"mask_ratio": 0.0, "pool": "backbone", "pool_requested": pool, "seed": seed, "method": "simclr",
                "model": model.config.to_dict(), "world_size": distributed.world_size(distributed.current())}
    return FeatureSet(features=features, labels=labels, ids=dataset_ids(dataset), settings=settings)


def _over_batches(forward, dataset: Dataset, batch_size: int, num_workers: int, quiet: bool,
                  skip=None) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels) of ``forward(images)`` over the batches of ``dataset`` (items ``(image, label)``),
    without gradients. Under a process group each rank runs its shard (after ``skip(sizes)`` has replayed
    the masks of the batches before it) and every rank gets all rows in dataset order."""
    import torch
    from tqdm.auto import tqdm

    side = getattr(dataset, "image_size", None)
    if side is not None:  # batch x image bytes bounded before the first batch is assembled
        check_batch_bytes(min(batch_size, len(dataset)), side)
    group = distributed.current()
    loader, shard = distributed.shard_loader(dataset, batch_size, num_workers, group)
    if skip is not None and shard.skipped:
        skip(shard.skipped)
    chunks: list[np.ndarray] = []
    labels: list[np.ndarray] = []

    def run_shard() -> None:
        for imgs, target in tqdm(loader, desc="features", disable=distributed.quiet_here(quiet, group), unit="batch"):
            with torch.no_grad():
                chunks.append(forward(imgs).float().cpu().numpy())
            labels.append(np.asarray(target, dtype=np.int64).reshape(-1))

    distributed.synchronised(group, run_shard)
    if group is not None:
        return _gathered(group, chunks, labels, shard)
    if not chunks:
        raise DataError("the dataset is empty: no features to extract")
    return np.concatenate(chunks), np.concatenate(labels)


def _gathered(group: distributed.Group, chunks: list[np.ndarray], labels: list[np.ndarray],
              shard: distributed.Shard) -> tuple[np.ndarray, np.ndarray]:
    """Every rank's feature rows and labels, in dataset order."""
    if shard.num_images == 0:
        raise DataError("the dataset is empty: no features to extract")
    rows = np.concatenate(chunks) if chunks else np.zeros((0,), np.float32)
    y = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    indices = shard.indices
    return (distributed.gather_rows(group, rows, indices, shard.num_images),
            distributed.gather_rows(group, y, indices, shard.num_images))


def dataset_ids(dataset: Dataset) -> np.ndarray:
    """The images' identifiers as strings: the dataset's ``ids`` when it has them, else their indices."""
    ids = getattr(dataset, "ids", None)
    return np.asarray(ids).astype(str) if ids is not None else np.arange(len(dataset)).astype(str)

__all__ = ["FeatureSet", "check_feature_rows", "dataset_ids", "extract_features", "pool_tokens",
    "resolve_pool"]
