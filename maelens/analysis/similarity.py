"""Image similarity search by cosine similarity of encoder outputs (IPOL sec. 6 "Image similarity
search", Fig. 11: encoder outputs at a 25% masking ratio; the paper notes the unmasked image (ratio 0)
works better for kNN, so both are worth comparing)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from ..errors import ConfigError, DataError
from .features import extract_features


def cosine_similarity(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Cosine similarity (Q, N) between query vectors (Q, F) and gallery vectors (N, F); 0 for a zero vector."""
    q = torch.as_tensor(np.asarray(queries, dtype=np.float64))
    g = torch.as_tensor(np.asarray(gallery, dtype=np.float64))
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise DataError(f"queries (Q, F) and gallery (N, F) must share F, got {tuple(q.shape)} and {tuple(g.shape)}")
    q = q / q.norm(dim=1, keepdim=True).clamp_min(1e-12)
    g = g / g.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return (q @ g.T).numpy()


@dataclass
class SimilarityResult:
    """For each of Q queries, the gallery ``indices`` (Q, k) of the most similar images and their
    cosine ``scores`` (Q, k), most similar first."""

    indices: np.ndarray
    scores: np.ndarray

    def to_frame(self, queries: Sequence[str], ids: Sequence[str] | None = None,
                 labels: Sequence[int] | None = None, **columns: object):
        """Long table: one row per (query, rank) with index, id, label, score and the given constant ``columns``."""
        import pandas as pd

        q, k = self.indices.shape
        flat = self.indices.reshape(-1)
        frame = pd.DataFrame({
            "query": np.repeat(np.asarray(queries, dtype=object), k),
            "rank": np.tile(np.arange(1, k + 1), q),
            "index": flat,
            "id": np.asarray(ids)[flat] if ids is not None else flat.astype(str),
            "label": np.asarray(labels)[flat] if labels is not None else -1,
            "score": self.scores.reshape(-1),
        })
        for name, value in columns.items():
            frame[name] = value
        return frame


#: Images shown per query when no ``k`` is given.
DEFAULT_TOP_K = 8


def top_k_similar(queries: np.ndarray, gallery: np.ndarray, k: int | None = None,
                  exclude: Sequence[int] | np.ndarray | None = None) -> SimilarityResult:
    """The ``k`` gallery vectors most cosine-similar to each query; ``exclude[q]`` >= 0 names a
    gallery index left out for query q (the query image itself). ``k`` None: :data:`DEFAULT_TOP_K`, lowered to
    the gallery's size; a given ``k`` larger than the gallery is a ConfigError, never lowered (issue 30)."""
    if k is not None and k < 1:
        raise ConfigError(f"top-k must be >= 1, got {k}")
    sims = torch.from_numpy(cosine_similarity(queries, gallery))
    if exclude is not None:
        exclude = torch.as_tensor(np.asarray(exclude, dtype=np.int64))
        rows = torch.nonzero(exclude >= 0).squeeze(1)
        sims[rows, exclude[rows]] = -torch.inf
    available = sims.shape[1] - (1 if exclude is not None and bool((exclude >= 0).any()) else 0)
    if available < 1:
        raise DataError("the gallery holds no image to compare the queries with")
    if k is None:
        k = min(DEFAULT_TOP_K, available)
    elif k > available:
        raise ConfigError(f"top-k {k} exceeds the {available} gallery images a query can be compared with; "
                          f"choose at most {available}")
    top = torch.topk(sims, k, dim=1, largest=True, sorted=True)
    return SimilarityResult(indices=top.indices.numpy(), scores=top.values.numpy())


def similar_images(model: torch.nn.Module, gallery: Dataset, queries: Sequence[int | torch.Tensor], *,
                   top_k: int | None = None, mask_ratio: float = 0.25, masking: str = "random", pool: str = "mean",
                   seed: int = 0, batch_size: int = 64, device: str = "cpu", num_workers: int = 0,
                   quiet: bool = False) -> SimilarityResult:
    """Top-k most similar gallery images for each query, by cosine similarity of pooled encoder
    outputs at ``mask_ratio``. A query is a gallery index (excluded from its own results) or an
    image tensor (3, S, S) normalised like the gallery."""
    from ..checkpoint.objects import as_model

    model = as_model(model)
    if pool == "tokens":
        raise ConfigError("similarity search compares one vector per image: use pool mean, cls or flatten")
    n = len(gallery)
    feats = extract_features(model, gallery, mask_ratio=mask_ratio, masking=masking, pool=pool, seed=seed,
                             batch_size=batch_size, device=device, num_workers=num_workers, quiet=quiet).features
    index_rows = [i for i, q in enumerate(queries) if not isinstance(q, torch.Tensor)]
    for i in index_rows:
        if not 0 <= int(queries[i]) < n:
            raise DataError(f"query index {queries[i]} is outside the dataset (0..{n - 1})")
    image_rows = [i for i, q in enumerate(queries) if isinstance(q, torch.Tensor)]
    query_feats = np.zeros((len(queries), feats.shape[1]), dtype=feats.dtype)
    exclude = np.full(len(queries), -1, dtype=np.int64)
    for i in index_rows:
        query_feats[i] = feats[int(queries[i])]
        exclude[i] = int(queries[i])
    if image_rows:
        images = torch.stack([queries[i] for i in image_rows])
        dataset = TensorDataset(images, torch.full((len(image_rows),), -1, dtype=torch.int64))
        query_feats[image_rows] = extract_features(model, dataset, mask_ratio=mask_ratio, masking=masking, pool=pool,
                                                   seed=seed, batch_size=batch_size, device=device, quiet=True).features
    return top_k_similar(query_feats, feats, top_k, exclude)

__all__ = ["DEFAULT_TOP_K", "SimilarityResult", "cosine_similarity", "similar_images", "top_k_similar"]
