"""Centred kernel alignment (CKA) between the layers of one model or of two models, streamed over a dataset.

Two estimators, both with linear kernels on the rows of the feature matrices X (n, p) and Y (n, q):

- ``linear``: linear CKA (Kornblith et al. 2019, "Similarity of Neural Network Representations
  Revisited", ICML, sec. 3: CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with K = XXᵀ, L = YYᵀ,
  which for linear kernels and column-centred X, Y is ``||YᵀX||²_F / (||XᵀX||_F ||YᵀY||_F)``).
  The dot-product form needs only the cross-covariances, so the stream keeps the sums of the
  features and of their outer products (float64), never a Gram matrix: memory is (Σ p)² whatever
  the number of images. All layers are stacked side by side, so one matrix product per layer and
  batch updates its accumulators against all later layers at once (M is symmetric).
- ``minibatch``: the minibatch CKA of Nguyen, Raghu & Kornblith 2021 ("Do Wide and Deep Networks Learn
  the Same Things?", ICLR, sec. 3): the unbiased HSIC estimator of Song et al. 2012 (``hsic1``) is
  averaged over minibatches of n >= 4 rows, and CKA is the ratio of the averages. Each minibatch
  estimate is unbiased, so the average converges to the population value as batches accumulate,
  whereas the plain estimator is biased at small n. Gram matrices are per minibatch (B x B), so this
  estimator also takes ``flatten`` pooling (an image's K·D features).

Which rows: see :mod:`maelens.analysis.layer_outputs` (``mean``, ``cls``, ``tokens`` or ``flatten``);
``linear`` takes ``mean``, ``cls`` and ``tokens`` (every patch token a sample), ``minibatch`` takes
``mean``, ``cls`` and ``flatten``. Features are the blocks' outputs before the final LayerNorm.

A layer whose features do not vary over the data (constant features) has HSIC(K, K) = 0 and no
CKA: it is refused with a :class:`DataError` naming it, never returned as NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ..choices import CKA_ESTIMATORS
from ..errors import ConfigError, DataError
from ..models.mae import MaskedAutoencoderViT
from . import distributed
from .layer_outputs import adapt_images, layer_names, pool_layer, run_layers

#: Token poolings each estimator takes (see the module docstring).
ESTIMATOR_POOLS = {"linear": ("mean", "cls", "tokens"), "minibatch": ("mean", "cls", "flatten")}
#: Smallest minibatch of the unbiased HSIC estimator (its normaliser is n(n - 3)).
MIN_BATCH = 4
#: A layer whose centred second moment is below this share of its raw one has constant features.
_CONSTANT_TOL = 1e-12

__all__ = ["CKAResult", "LinearCKAAccumulator", "MinibatchCKAAccumulator", "hsic1", "layer_cka",
           "linear_cka", "minibatch_cka"]


def _as64(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(x)
    return x.detach().to(torch.float64).reshape(x.shape[0], -1)


def linear_cka(X: np.ndarray | torch.Tensor, Y: np.ndarray | torch.Tensor) -> float:
    """Linear CKA of two feature matrices with the same rows, X (n, p) and Y (n, q), computed directly
    on the whole data: ``||YᵀX||²_F / (||XᵀX||_F ||YᵀY||_F)`` after centring the columns
    (Kornblith et al. 2019, sec. 3). 1 for X = Y; invariant to orthogonal transforms and isotropic
    scaling of either side, not to general invertible linear maps."""
    x, y = _as64(X), _as64(Y)
    if x.shape[0] != y.shape[0]:
        raise DataError(f"CKA compares the same samples: X has {x.shape[0]} rows, Y has {y.shape[0]}")
    acc = LinearCKAAccumulator([x.shape[1], y.shape[1]], names=["X", "Y"])
    acc.update([x, y])
    return float(acc.result()[0, 1])


def hsic1(K: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    """Unbiased HSIC estimate (Song et al. 2012, as used by Nguyen et al. 2021, sec. 3) of Gram matrices
    K (..., n, n) and L (..., n, n), n >= 4:

    ``[tr(K̃L̃) + 1ᵀK̃1 · 1ᵀL̃1 / ((n-1)(n-2)) - 2/(n-2) · 1ᵀK̃L̃1] / (n(n-3))``, K̃, L̃ with zero diagonals.
    """
    n = K.shape[-1]
    if n < MIN_BATCH:
        raise DataError(f"the unbiased HSIC estimator needs minibatches of at least {MIN_BATCH} samples, got {n}")
    eye = torch.eye(n, dtype=torch.bool, device=K.device)
    Kt, Lt = K.masked_fill(eye, 0), L.masked_fill(eye, 0)
    trace = (Kt * Lt).sum(dim=(-2, -1))
    sums = Kt.sum(dim=(-2, -1)) * Lt.sum(dim=(-2, -1)) / ((n - 1) * (n - 2))
    rows = (Kt.sum(dim=-1) * Lt.sum(dim=-1)).sum(dim=-1)
    return (trace + sums - 2.0 / (n - 2) * rows) / (n * (n - 3))


def minibatch_cka(batches_x: Sequence[np.ndarray | torch.Tensor], batches_y: Sequence[np.ndarray | torch.Tensor]) -> float:
    """Minibatch CKA (Nguyen et al. 2021, sec. 3) of paired minibatches X_i (n_i, p), Y_i (n_i, q):
    ``mean_i hsic1(X_i, Y_i) / sqrt(mean_i hsic1(X_i, X_i) · mean_i hsic1(Y_i, Y_i))`` with linear kernels."""
    batches_x, batches_y = list(batches_x), list(batches_y)
    if not batches_x or len(batches_x) != len(batches_y):
        raise DataError(f"minibatch CKA needs the same non-zero number of X and Y minibatches, got "
                        f"{len(batches_x)} and {len(batches_y)}")
    acc = MinibatchCKAAccumulator([_as64(batches_x[0]).shape[1], _as64(batches_y[0]).shape[1]], names=["X", "Y"])
    for x, y in zip(batches_x, batches_y):
        acc.update([_as64(x), _as64(y)])
    return float(acc.result()[0, 1])


def _check_dims(dims: Sequence[int], names: Sequence[str] | None) -> list[str]:
    names = list(names) if names is not None else [str(i) for i in range(len(dims))]
    if not dims or len(names) != len(dims) or min(dims) < 1:
        raise ConfigError(f"CKA needs one positive feature dimension per layer, got {list(dims)} for {names}")
    return names


def _rows(features: Sequence[torch.Tensor], dims: Sequence[int]) -> list[torch.Tensor]:
    feats = [_as64(f) for f in features]
    if len(feats) != len(dims) or [f.shape[1] for f in feats] != list(dims):
        raise DataError(f"expected features of dimensions {list(dims)}, got {[f.shape[1] for f in feats]}")
    if len({f.shape[0] for f in feats}) != 1:
        raise DataError(f"every layer must give the same rows, got {[f.shape[0] for f in feats]}")
    return feats


class LinearCKAAccumulator:
    """Streamed linear CKA between all pairs of ``len(dims)`` layers of feature dimensions ``dims``.

    Keeps, in float64, the row count n, the sum s of the (shifted) stacked features z (Σ dims) and
    the sum M of their outer products (its upper block triangle: M is symmetric); the centred
    cross-covariance is ``C = M - s sᵀ / n`` and ``CKA(a, b) = ||C_ab||²_F / (||C_aa||_F ||C_bb||_F)``. The features are shifted by the first
    batch's mean before summing, which keeps ``M - s sᵀ / n`` free of cancellation when the means are
    large (transformer features have offsets far above their spread on some channels).
    """

    def __init__(self, dims: Sequence[int], names: Sequence[str] | None = None, device: str | torch.device = "cpu"):
        self.dims = [int(d) for d in dims]
        self.names = _check_dims(self.dims, names)
        total = sum(self.dims)
        self.n = 0
        self.shift: torch.Tensor | None = None
        self.sum = torch.zeros(total, dtype=torch.float64, device=device)
        self.outer = torch.zeros(total, total, dtype=torch.float64, device=device)
        self.raw_sq = torch.zeros(len(self.dims), dtype=torch.float64, device=device)
        ends = np.cumsum(self.dims).tolist()
        self._bounds = list(zip([0] + ends[:-1], ends))

    def update(self, features: Sequence[torch.Tensor]) -> None:
        """Add the same m rows of every layer: ``features[l]`` is (m, dims[l])."""
        z = torch.cat(_rows(features, self.dims), dim=1).to(self.outer.device)
        if z.shape[0] == 0:
            return
        if self.shift is None:
            self.shift = z.mean(dim=0)
        self.raw_sq += torch.stack([f.square().sum() for f in z.split(self.dims, dim=1)])
        z = z - self.shift
        self.n += z.shape[0]
        self.sum += z.sum(dim=0)
        # the upper block triangle only (layer a against layers a, a+1, ...): M is symmetric, and one
        # product per layer updates all its pairs at once
        for start, stop in self._bounds:
            self.outer[start:stop, start:].addmm_(z[:, start:stop].T, z[:, start:])

    def all_reduce(self, group: distributed.Group | None) -> None:
        """Sum the float64 accumulators of every rank of ``group`` (all ranks must share ``shift``)."""
        if group is None:
            return
        total = distributed.reduce_sums(group, {"n": np.int64(self.n), "sum": self.sum, "outer": self.outer,
                                                "raw_sq": self.raw_sq})
        self.n, self.sum, self.outer, self.raw_sq = int(total["n"]), total["sum"], total["outer"], total["raw_sq"]

    def result(self) -> np.ndarray:
        """CKA matrix (L, L) of the rows added so far."""
        if self.n < 2:
            raise DataError(f"CKA needs at least 2 samples, got {self.n}")
        count = len(self.dims)
        block_sq = torch.zeros(count, count, dtype=torch.float64, device=self.outer.device)
        variance = torch.zeros(count, dtype=torch.float64, device=self.outer.device)
        # centred cross-covariance C_ab = M_ab - s_a s_bᵀ / n, one block at a time (memory: one block)
        for a, (a0, a1) in enumerate(self._bounds):
            for b in range(a, count):
                b0, b1 = self._bounds[b]
                block = self.outer[a0:a1, b0:b1] - torch.outer(self.sum[a0:a1], self.sum[b0:b1]) / self.n
                block_sq[a, b] = block_sq[b, a] = block.square().sum()
                if a == b:
                    variance[a] = block.diagonal().sum()
        _check_not_constant(variance, self.raw_sq, self.names, self.n)
        norms = block_sq.diagonal().sqrt()
        return (block_sq / torch.outer(norms, norms)).clamp(0.0, 1.0).cpu().numpy()


def _shift(features: Sequence[torch.Tensor]) -> torch.Tensor:
    """The shift :class:`LinearCKAAccumulator` takes from its first batch: the mean of the stacked rows (CPU)."""
    return torch.cat([_as64(f) for f in features], dim=1).mean(dim=0).cpu()


def _check_not_constant(variance: torch.Tensor, scale: torch.Tensor, names: Sequence[str], n: int) -> None:
    constant = (variance <= _CONSTANT_TOL * scale) | (scale == 0)
    if constant.any():
        which = [names[i] for i in torch.nonzero(constant).flatten().tolist()]
        raise DataError(f"layer(s) {', '.join(which)} have constant features over the {n} samples: their "
                        "self-similarity HSIC is 0 and CKA is undefined")


class MinibatchCKAAccumulator:
    """Minibatch CKA (Nguyen et al. 2021) between all pairs of ``len(dims)`` layers: the sums over
    minibatches of :func:`hsic1` for every pair, updated from the stacked per-layer Gram matrices
    (L, B, B) with batched products."""

    def __init__(self, dims: Sequence[int], names: Sequence[str] | None = None, device: str | torch.device = "cpu"):
        self.dims = [int(d) for d in dims]
        self.names = _check_dims(self.dims, names)
        self.batches = 0
        self.samples = 0
        self.total = torch.zeros(len(self.dims), len(self.dims), dtype=torch.float64, device=device)

    def update(self, features: Sequence[torch.Tensor]) -> None:
        """Add one minibatch of n >= 4 rows of every layer: ``features[l]`` is (n, dims[l])."""
        feats = [f.to(self.total.device) for f in _rows(features, self.dims)]
        n = feats[0].shape[0]
        if n < MIN_BATCH:
            raise DataError(f"the unbiased HSIC estimator needs minibatches of at least {MIN_BATCH} samples, "
                            f"got {n}")
        grams = torch.stack([f @ f.T for f in feats])  # (L, n, n)
        grams.diagonal(dim1=-2, dim2=-1).zero_()
        flat = grams.reshape(len(feats), -1)
        sums = flat.sum(dim=1)
        rowsums = grams.sum(dim=-1)  # (L, n)
        # hsic1 for every pair (a, b): tr(K̃_a K̃_b), 1ᵀK̃_a1 · 1ᵀK̃_b1, (K̃_a 1)·(K̃_b 1)
        hsic = (flat @ flat.T + torch.outer(sums, sums) / ((n - 1) * (n - 2))
                - 2.0 / (n - 2) * (rowsums @ rowsums.T)) / (n * (n - 3))
        self.total += hsic
        self.batches += 1
        self.samples += n

    def all_reduce(self, group: distributed.Group | None) -> None:
        """Sum the per-minibatch HSIC estimates and counts of every rank of ``group``."""
        if group is None:
            return
        total = distributed.reduce_sums(group, {"batches": np.int64(self.batches), "samples": np.int64(self.samples),
                                                "total": self.total})
        self.batches, self.samples, self.total = int(total["batches"]), int(total["samples"]), total["total"]

    def result(self) -> np.ndarray:
        """CKA matrix (L, L) of the minibatches added so far."""
        if self.batches == 0:
            raise DataError(f"minibatch CKA needs at least one minibatch of {MIN_BATCH} or more samples")
        mean = self.total / self.batches
        self_hsic = mean.diagonal()
        bad = self_hsic <= 0
        if bad.any():
            which = [self.names[i] for i in torch.nonzero(bad).flatten().tolist()]
            raise DataError(f"layer(s) {', '.join(which)}: the estimated self-similarity HSIC is not positive over "
                            f"{self.samples} samples (constant or nearly constant features): CKA is undefined")
        return (mean / torch.outer(self_hsic.sqrt(), self_hsic.sqrt())).cpu().numpy()


@dataclass
class CKAResult:
    """CKA between the layers ``names_a`` (rows of ``matrix``) and ``names_b`` (columns); ``settings``
    say how it was computed (estimator, pooling, images, models)."""

    names_a: list[str]
    names_b: list[str]
    matrix: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)

    def to_frame(self) -> Any:
        """pandas DataFrame with one row per pair: layer_a, layer_b, cka."""
        import pandas as pd

        return pd.DataFrame([{"layer_a": a, "layer_b": b, "cka": float(self.matrix[i, j])}
                             for i, a in enumerate(self.names_a) for j, b in enumerate(self.names_b)],
                            columns=["layer_a", "layer_b", "cka"])

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON: settings, both layer lists and the matrix (rows = layers a)."""
        return {**self.settings, "layers_a": self.names_a, "layers_b": self.names_b, "cka": self.matrix.tolist()}


def check_estimator(estimator: str, pool: str) -> None:
    """Raise :class:`ConfigError` for an unknown estimator or a pooling it does not take."""
    if estimator not in CKA_ESTIMATORS:
        raise ConfigError(f"CKA estimator must be one of {', '.join(CKA_ESTIMATORS)}, got {estimator!r}")
    if pool not in ESTIMATOR_POOLS[estimator]:
        hint = ("its accumulators would be (K·D)² per layer pair; use the minibatch estimator" if pool == "flatten"
                else "its Gram matrices would be (B·K)² per layer; use the linear estimator" if pool == "tokens"
                else "")
        raise ConfigError(f"the {estimator} CKA estimator takes pooling {', '.join(ESTIMATOR_POOLS[estimator])}, "
                          f"not {pool!r}" + (f" ({hint})" if hint else ""))


def _check_layer_cka(model: MaskedAutoencoderViT, model_b: MaskedAutoencoderViT | None, *, estimator: str,
                     pool: str, batch_size: int, mask_ratio: float) -> None:
    """Refuse what :func:`layer_cka` cannot compute: an estimator / pooling pair, minibatches too small for the
    unbiased HSIC, or masks shared by two models of different patch grids."""
    check_estimator(estimator, pool)
    if estimator == "minibatch" and batch_size < MIN_BATCH:
        raise ConfigError(f"the minibatch CKA estimator needs batches of at least {MIN_BATCH} images, got "
                          f"batch_size={batch_size}")
    if model_b is not None and mask_ratio > 0 and model_b.grid_size != model.grid_size:
        raise ConfigError(f"masked CKA between two models needs the same patch grid, got {model.grid_size} and "
                          f"{model_b.grid_size}; use mask ratio 0")


@torch.no_grad()
def layer_cka(model: MaskedAutoencoderViT, dataset: Dataset, *, model_b: MaskedAutoencoderViT | None = None,
              parts: Sequence[str] = ("encoder",), parts_b: Sequence[str] | None = None, pool: str = "mean",
              estimator: str = "linear", mask_ratio: float = 0.0, masking: str = "random", batch_size: int = 64,
              seed: int = 0, device: str | torch.device = "cpu", num_workers: int = 0,
              quiet: bool = False) -> CKAResult:
    """CKA between every pair of layers of ``model`` (``parts``: encoder blocks, and decoder blocks where
    the model has them), or between the layers of ``model`` (rows) and ``model_b`` (columns, ``parts_b``,
    by default ``parts``), over the images of ``dataset`` (items ``(image, label)``, normalised for
    ``model``; ``model_b`` sees the same pictures re-normalised and resized for it).

    One forward pass per batch records every block's output; ``pool`` turns it into rows (see
    :data:`ESTIMATOR_POOLS`); ``estimator`` is ``linear`` (streamed, exact) or ``minibatch`` (Nguyen et
    al.'s debiased estimate: minibatches of ``batch_size`` images; a last batch of fewer than 4 images
    is left out and counted in the settings). ``mask_ratio=0`` (the default) encodes every patch;
    with masking both models see the same mask, which needs the same patch grid. Under a
    ``torch.distributed`` process group each rank runs a shard of the batches, the linear estimator's
    shift comes from rank 0's first batch (the first batch of one process) and the float64 accumulators
    are summed over the ranks (:mod:`~maelens.analysis.distributed`).
    """
    from ..checkpoint.objects import as_model

    model = as_model(model)
    model_b = as_model(model_b, "model_b") if model_b is not None else None
    _check_layer_cka(model, model_b, estimator=estimator, pool=pool, batch_size=batch_size, mask_ratio=mask_ratio)
    parts_b = tuple(parts_b if parts_b is not None else parts)
    models = [model] if model_b is None else [model, model_b]
    names = [layer_names(model, parts)] + ([layer_names(model_b, parts_b)] if model_b is not None else [])
    for m in models:
        m.to(device).eval()
    labels = [f"a:{n}" for n in names[0]] + ([f"b:{n}" for n in names[1]] if model_b is not None else [])
    acc_cls = LinearCKAAccumulator if estimator == "linear" else MinibatchCKAAccumulator
    # one generator per model, seeded alike: both draw the same masks (same grid, same batches)
    generators = [torch.Generator().manual_seed(seed) for _ in models]
    group = distributed.current()
    loader, shard = distributed.shard_loader(dataset, batch_size, num_workers, group)
    for m, generator in zip(models, generators):
        distributed.skip_masks(generator, shard.skipped, masking, m.grid_size, mask_ratio)
    counts = {"images": 0, "dropped": 0}

    def features(imgs: torch.Tensor) -> list[torch.Tensor] | None:
        """Every layer's rows for one batch; None for a last minibatch too small for the estimator."""
        imgs = imgs.to(device)
        if estimator == "minibatch" and imgs.shape[0] < MIN_BATCH:
            counts["dropped"] += imgs.shape[0]
            return None
        feats = []
        for m, part, generator in zip(models, (parts, parts_b), generators):
            x = adapt_images(imgs, model, m)
            feats += [pool_layer(t, pool) for t in run_layers(m, x, part, mask_ratio=mask_ratio, masking=masking,
                                                               generator=generator)]
        counts["images"] += imgs.shape[0]
        return feats

    batches = iter(tqdm(loader, desc="cka", disable=distributed.quiet_here(quiet, group), unit="batch"))
    # the first batch sets the accumulators' dimensions (flatten: K·D with K the kept patches) and the
    # linear estimator's shift; under a process group both come from rank 0, which holds the first batch
    first = distributed.synchronised(group, lambda: next((f for f in (features(b[0]) for b in batches) if f is not None),
                                                         None))
    spec = distributed.broadcast(group, None if first is None else
                                 ([f.shape[1] for f in first], _shift(first) if estimator == "linear" else None))
    acc = None
    if spec is not None:
        acc = acc_cls(spec[0], names=labels, device=device)
        if estimator == "linear":
            acc.shift = spec[1].to(device)

    def accumulate() -> None:
        if first is not None:
            acc.update(first)
        for imgs, _ in batches:
            feats = features(imgs)
            if feats is not None:
                acc.update(feats)

    distributed.synchronised(group, accumulate)
    if acc is not None:
        acc.all_reduce(group)
    totals = distributed.reduce_sums(group, {key: np.int64(value) for key, value in counts.items()})
    images, dropped = int(totals["images"]), int(totals["dropped"])
    if acc is None:
        raise DataError("no images to compare: the dataset is empty" if dropped == 0 else
                        f"the {dropped} image(s) make no minibatch of {MIN_BATCH} or more for the minibatch estimator")
    full = acc.result()
    la = len(names[0])
    matrix = full[:la, :la] if model_b is None else full[:la, la:]
    settings = {"estimator": estimator, "pool": pool, "num_images": images, "dropped_images": dropped,
                "batch_size": batch_size, "mask_ratio": mask_ratio, "masking": masking, "seed": seed,
                "features": "block outputs before the final LayerNorm",
                "model": model.config.to_dict(), "parts": list(parts), "world_size": distributed.world_size(group)}
    if model_b is not None:
        settings.update(model_b=model_b.config.to_dict(), parts_b=list(parts_b))
    return CKAResult(names_a=names[0], names_b=names[-1] if model_b is not None else names[0], matrix=matrix,
                     settings=settings)

