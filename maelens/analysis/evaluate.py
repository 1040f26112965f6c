"""Representation evaluation by classification of frozen features (IPOL sec. 6, Tables 3-4).

Every method ends in an accuracy on held-out images with its 95% Wilson interval:

- ``knn``: k-nearest neighbours (k = 20 in the paper) on the features themselves;
- ``pca-knn``: PCA to 50 axes, then kNN (Table 3, column "PCA");
- ``tsne-knn``: PCA to 50 axes, t-SNE to 2-D, then kNN in the plane (Table 3, "PCA+t-sne";
  Figs. 13-14 show the maps);
- ``linear`` / ``attentive``: the MAE linear probe and the CAE attentive probe;
- ``vae-gauss`` / ``vae-t`` / ``ptsne``: parametric 2-D maps (Table 4), fitted on another feature
  set when one is given (``fit_on``), then kNN in the plane.

Protocols. The held-out images are either a given test set, a stratified seeded holdout, or the
folds of a stratified k-fold (accuracy pooled over folds). t-SNE is non-parametric: with
``tsne_protocol="transform"`` it is fitted on the training images and the test images are placed
into that map with openTSNE's ``transform`` (a clean train/test protocol); ``"paper"`` fits it on
all images, test ones included, as the IPOL paper does ("t-sne needs to be fitted on an entire
dataset"); the ``protocol`` column of the report says which was used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping, Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.decomposition import PCA
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import normalize
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_X_y
from tqdm.auto import tqdm

from ..choices import (
    DEFAULT_NEIGHBOURS,
    EVALUATION_METHODS,
    KNN_METRICS,
    KNN_WEIGHTS,
    NO_KNN_METHODS,
    PARAMETRIC_METHODS,
    TABLE3_METHODS,
    TSNE_PROTOCOLS,
)
from ..errors import ConfigError, DataError
from ._validation import fitted_input
from .evaluate_settings import EvaluationSettings
from .features import FeatureSet
from .stats import wilson_interval
from .tsne import PCATSNE, pca_components, resolve_perplexity

METRICS, WEIGHTS = KNN_METRICS, KNN_WEIGHTS
#: The parametric 2-D maps by method, as class names of :mod:`maelens.analysis.reduce` (imported when used:
#: they need torch, which the kNN and t-SNE methods do not).
_REDUCERS = {"vae-gauss": "GaussianVAE", "vae-t": "StudentTVAE", "ptsne": "ParametricTSNE"}


class KNNClassifier(ClassifierMixin, BaseEstimator):
    """k-nearest-neighbour vote on (N, F) features, computed in float64 by chunks of queries (numpy).

    ``metric``: ``cosine`` (distance 1 - cos) or ``euclidean``. ``weights``: ``uniform`` (majority),
    ``distance`` (1 / d; exact matches take the whole vote, as in scikit-learn) or ``exp``
    (exp(-d / temperature): with cosine, DINO's weighted vote exp(cos / T) up to a constant).
    Ties go to the class that sorts first. ``k`` is capped at the number of training samples.

    Why not scikit-learn's ``KNeighborsClassifier`` (it would take ``exp`` as a weight callable): at Table 3's
    size (``benchmarks/knn.py``: 20,000 x 240 training features, 5,000 queries) this float64 vote takes 0.72 s
    where scikit-learn takes 1.57 s in float64 and 0.59 s in float32, with the same predictions; the
    float64 vote (no float32 rounding flipping near-tied votes), ``k`` capped for small sets, and no torch
    or extra threads at import are what it adds.
    """

    def __init__(self, n_neighbors: int = 20, metric: str = "cosine", weights: str = "uniform",
                 temperature: float = 0.07, chunk_size: int = 1024):
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.weights = weights
        self.temperature = temperature
        self.chunk_size = chunk_size

    def fit(self, X, y) -> "KNNClassifier":
        """Store the reference features (N, F) and labels (N,)."""
        if self.metric not in METRICS:
            raise ConfigError(f"kNN metric must be one of {', '.join(METRICS)}, got {self.metric!r}")
        if self.weights not in WEIGHTS:
            raise ConfigError(f"kNN weights must be one of {', '.join(WEIGHTS)}, got {self.weights!r}")
        if self.n_neighbors < 1:
            raise ConfigError(f"kNN needs k >= 1, got {self.n_neighbors}")
        X, y = check_X_y(X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        self.n_features_in_ = X.shape[1]
        self._reference = self._prepare(X)
        self._reference_sq = np.einsum("ij,ij->i", self._reference, self._reference)
        self._targets = y_idx.astype(np.int64)
        return self

    def _prepare(self, X: np.ndarray) -> np.ndarray:
        return normalize(X) if self.metric == "cosine" else X

    def kneighbors(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Distances (M, k) ascending and indices (M, k) of each query's nearest training samples; equal
        distances are ordered by training index."""
        X = fitted_input(self, X, dtype=np.float64)
        k = min(self.n_neighbors, len(self._targets))
        dists, idxs = [], []
        for start in range(0, len(X), self.chunk_size):
            q = self._prepare(X[start:start + self.chunk_size])
            if self.metric == "cosine":
                d = 1.0 - q @ self._reference.T
            else:
                d = np.einsum("ij,ij->i", q, q)[:, None] + self._reference_sq - 2.0 * q @ self._reference.T
                d = np.sqrt(np.maximum(d, 0.0))
            # the k smallest of each row (any order), then sorted by distance, ties by training index
            part = np.argpartition(d, k - 1, axis=1)[:, :k] if k < d.shape[1] else np.tile(np.arange(k), (len(d), 1))
            part.sort(axis=1)
            near = np.take_along_axis(d, part, axis=1)
            order = np.argsort(near, axis=1, kind="stable")
            dists.append(np.take_along_axis(near, order, axis=1))
            idxs.append(np.take_along_axis(part, order, axis=1))
        return np.concatenate(dists), np.concatenate(idxs)

    def _votes(self, X) -> np.ndarray:
        dist, idx = self.kneighbors(X)
        if self.weights == "uniform":
            w = np.ones_like(dist)
        elif self.weights == "distance":
            exact = dist == 0
            with np.errstate(divide="ignore"):
                w = np.where(exact.any(axis=1, keepdims=True), exact.astype(np.float64), 1.0 / dist)
        else:
            w = np.exp(-(dist - dist[:, :1]) / self.temperature)
        m, c = len(dist), len(self.classes_)
        cells = (np.arange(m)[:, None] * c + self._targets[idx]).ravel()
        return np.bincount(cells, weights=w.ravel(), minlength=m * c).reshape(m, c)

    def predict_proba(self, X) -> np.ndarray:
        """Share of the (weighted) vote of each class (M, C), in the order of ``classes_``."""
        votes = self._votes(X)
        return votes / votes.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        """The class with the largest vote (M,)."""
        winners = self._votes(X).argmax(axis=1)
        return self.classes_[winners]


def pca_knn(n_components: int = 50, random_state: int | None = None, **knn: Any):
    """PCA (full SVD) followed by :class:`KNNClassifier`, as a scikit-learn pipeline (Table 3 "PCA")."""
    return make_pipeline(PCA(n_components, svd_solver="full", random_state=random_state), KNNClassifier(**knn))


@dataclass
class MethodResult:
    """Accuracy of one method on ``n`` held-out images, with its 95% Wilson interval."""

    method: str
    accuracy: float
    ci_low: float
    ci_high: float
    n: int
    protocol: str
    correct: int


@dataclass
class PlaneMap:
    """A 2-D map of the evaluated images: ``coords`` (N, 2), ``labels`` (N,), ``test`` (N,) bool."""

    coords: np.ndarray
    labels: np.ndarray
    test: np.ndarray


@dataclass
class EvaluationReport:
    """Results of :func:`evaluate_features`: one row per method, the run's settings and the 2-D maps."""

    results: list[MethodResult]
    settings: dict[str, Any] = field(default_factory=dict)
    maps: dict[str, PlaneMap] = field(default_factory=dict)

    def to_frame(self):
        """pandas DataFrame with columns method, accuracy, ci_low, ci_high, n, protocol, correct."""
        import pandas as pd

        return pd.DataFrame([asdict(r) for r in self.results],
                            columns=["method", "accuracy", "ci_low", "ci_high", "n", "protocol", "correct"])

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON: ``results`` (list of rows) and ``settings``."""
        return {"results": [asdict(r) for r in self.results], "settings": self.settings}

    def table(self) -> str:
        """Human-readable table: accuracy in % with its 95% interval."""
        width = max([len("method")] + [len(r.method) for r in self.results])
        lines = [f"{'method':<{width}}  accuracy  95% CI          n  protocol"]
        for r in self.results:
            ci = f"[{100 * r.ci_low:5.1f}, {100 * r.ci_high:5.1f}]"
            lines.append(f"{r.method:<{width}}  {100 * r.accuracy:7.1f}%  {ci}  {r.n:5d}  {r.protocol}")
        return "\n".join(lines)


def vectors(fs: FeatureSet) -> np.ndarray:
    """(N, F) vectors of a feature set; patch tokens (N, K, D) are mean-pooled (same as pool="mean")."""
    return fs.features.mean(axis=1) if fs.features.ndim == 3 else fs.flat()


def vector_dim(fs: FeatureSet) -> int:
    """Dimension F of :func:`vectors` of ``fs``."""
    return int(fs.features.shape[-1]) if fs.features.ndim == 3 else fs.dim


def check_compatible(a: FeatureSet, b: FeatureSet, name_a: str, name_b: str) -> None:
    """Raise :class:`DataError` unless both feature sets give vectors of the same dimension."""
    da, db = vector_dim(a), vector_dim(b)
    if da != db:
        raise DataError(f"{name_b} has {db}-dimensional features but {name_a} has {da}; "
                        "both must come from the same encoder and pooling")


def check_same_classes(a: FeatureSet, b: FeatureSet, name_a: str, name_b: str) -> None:
    """Raise :class:`DataError` when both sets record their class names (``settings["classes"]``) and the lists
    differ: a label must mean the same class in the training and the test set, or the accuracy compares
    unrelated things (issue 30)."""
    ca, cb = a.settings.get("classes"), b.settings.get("classes")
    if ca and cb and list(ca) != list(cb):
        raise DataError(f"{name_b} records the classes {_few_names(cb)} but {name_a} records {_few_names(ca)}: "
                        "their labels do not mean the same classes (features of two different data sets?)")


def _few_names(names: Sequence[str], n: int = 4) -> str:
    shown = ", ".join(map(str, list(names)[:n])) + (", ..." if len(names) > n else "")
    return f"[{shown}] ({len(names)})"


def check_class_names(fs: FeatureSet, name: str) -> None:
    """Raise :class:`DataError` when ``fs`` records its class names and a label names none of them (more
    labels than class names: the report would count classes that have no name, issue 30)."""
    classes = fs.settings.get("classes")
    if classes and len(fs) and int(fs.labels.max()) >= len(classes):
        raise DataError(f"{name}: label {int(fs.labels.max())} names no class, but the file records only "
                        f"{len(classes)} class names {_few_names(classes)}")


def check_labelled(fs: FeatureSet, name: str) -> None:
    """Raise :class:`DataError` if some images of ``fs`` have no label (-1)."""
    missing = int((fs.labels < 0).sum())
    if missing:
        raise DataError(f"{name}: {missing} of {len(fs)} images have no label (-1); kNN accuracy and the "
                        "probes need labelled features (use a labelled dataset)")


def check_classes(fs: FeatureSet, name: str) -> None:
    """Raise :class:`DataError` unless ``fs`` holds at least two classes: with one, every vote and probe
    predicts it and the accuracy would be a meaningless 100%."""
    classes = np.unique(fs.labels)
    if len(classes) < 2:
        only = f" (label {classes[0]})" if len(classes) else ""
        raise DataError(f"{name}: all {len(fs)} images belong to one class{only}; classification accuracy needs "
                        "at least 2 classes")


def check_inputs(train: FeatureSet, test: FeatureSet | None, fit_on: FeatureSet | None, methods: Sequence[str],
                 names: Mapping[str, str]) -> None:
    """Raise :class:`DataError` for inputs :func:`evaluate_features` cannot score: unlabelled images, a
    single class, features of different encoders, or no patch tokens for the attentive probe."""
    sets = [(train, names["train"])] + ([(test, names["test"])] if test is not None else [])
    for fs, name in sets:
        check_labelled(fs, name)
        check_class_names(fs, name)
        if "attentive" in methods and fs.features.ndim != 3:
            raise DataError(f"{name}: the attentive probe needs patch tokens (N, K, D); extract the features "
                            f"with pool 'tokens' (got shape {fs.features.shape})")
    check_classes(train, names["train"])
    if test is not None:
        check_compatible(train, test, names["train"], names["test"])
        check_same_classes(train, test, names["train"], names["test"])
        if "attentive" in methods and train.features.shape[1:] != test.features.shape[1:]:
            raise DataError(f"{names['test']} has tokens {test.features.shape[1:]} but {names['train']} has "
                            f"{train.features.shape[1:]}")
    if fit_on is not None:
        check_compatible(train, fit_on, names["train"], names["fit_on"])


def smallest_training_split(train: FeatureSet, test: FeatureSet | None = None, *, folds: int = 0,
                            test_size: float = 0.25, seed: int = 0) -> int:
    """Training images of the smallest split :func:`evaluate_features` fits on (the given ``train`` set,
    the holdout's training part, or the smallest fold complement): the most neighbours a vote can have."""
    labels = train.labels if test is None else np.concatenate([train.labels, test.labels])
    splits, _ = make_splits(labels, n_train=len(train) if test is not None else None, folds=folds,
                            test_size=test_size, seed=seed)
    return min(len(tr) for tr, _ in splits)


def resolve_k(k: int | None, n_train: int) -> int:
    """The kNN ``k``: :data:`~maelens.choices.DEFAULT_NEIGHBOURS` capped at ``n_train`` when not given (a default must fit the data);
    a given ``k`` larger than ``n_train`` is a ConfigError, never silently lowered."""
    if k is None:
        return min(DEFAULT_NEIGHBOURS, n_train)
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    if k > n_train:
        raise ConfigError(f"k={k} neighbours exceeds the {n_train} training images of the evaluation split; "
                          f"choose k <= {n_train}")
    return k


#: PCA axes of ``pca-knn`` and ``tsne-knn`` when none are given (IPOL Table 3).
DEFAULT_PCA_DIM = 50
#: Methods that reduce the features with PCA first.
PCA_METHODS = ("pca-knn", "tsne-knn")


def resolve_pca_dim(pca_dim: int | None, n_train: int, n_features: int, methods: Sequence[str]) -> int:
    """The PCA axes: :data:`DEFAULT_PCA_DIM` capped at the rank bound ``min(n_train, n_features)`` when not
    given (a default must fit the data); a given value above the bound is a ConfigError when a PCA method
    runs, never silently lowered (the README's rule, issue 30)."""
    bound = min(n_train, n_features)
    if pca_dim is None:
        return max(1, min(DEFAULT_PCA_DIM, bound))
    if pca_dim > bound and any(m in PCA_METHODS for m in methods):
        raise ConfigError(f"pca_dim={pca_dim} exceeds what PCA can give here: at most {bound} axes "
                          f"({n_features} feature dimensions, {n_train} training images in the smallest split); "
                          f"choose pca_dim <= {bound}")
    return pca_dim


def _check_settings(pca_dim: int | None, perplexity: float | None, tsne_protocol: str = "transform") -> None:
    """Raise :class:`ConfigError` for PCA axes, a perplexity or a t-SNE protocol no method can use (never
    silently replaced)."""
    if tsne_protocol not in TSNE_PROTOCOLS:
        raise ConfigError(f"t-SNE protocol must be one of {', '.join(TSNE_PROTOCOLS)}, got {tsne_protocol!r}")
    if pca_dim is not None and pca_dim < 1:
        raise ConfigError(f"pca_dim must be >= 1, got {pca_dim}")
    if perplexity is not None and not (np.isfinite(perplexity) and perplexity > 0):
        raise ConfigError(f"perplexity must be a finite number > 0, got {perplexity}")


def check_methods(methods: Sequence[str], *, fit_on: bool = False) -> None:
    """Raise :class:`ConfigError` for unknown or no methods, or a ``fit_on`` set no requested method uses."""
    unknown = [m for m in methods if m not in EVALUATION_METHODS]
    if unknown or not methods:
        raise ConfigError(f"unknown or no evaluation method(s) {', '.join(unknown) or '(none)'}; "
                          f"choose from {', '.join(EVALUATION_METHODS)}")
    if fit_on and not any(m in PARAMETRIC_METHODS for m in methods):
        raise ConfigError(f"fit-on features are only used by {', '.join(PARAMETRIC_METHODS)}; "
                          "none of them was requested")


def make_splits(labels: np.ndarray, *, n_train: int | None = None, folds: int = 0, test_size: float = 0.25,
                seed: int = 0) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """Train/test index pairs and their description: the first ``n_train`` samples against the rest
    when ``n_train`` is given, else a stratified ``folds``-fold split (``folds`` >= 2), else a
    stratified holdout of ``test_size``; shuffles are seeded with ``seed``."""
    n = len(labels)
    if n_train is not None:
        return [(np.arange(n_train), np.arange(n_train, n))], f"train {n_train} / test {n - n_train}"
    counts = np.unique(labels, return_counts=True)[1]
    if folds < 0 or folds == 1:
        raise ConfigError(f"folds must be 0 (a single holdout) or at least 2, got {folds}")
    if folds >= 2:
        if counts.min() < folds:
            raise DataError(f"stratified {folds}-fold needs at least {folds} images per class; the smallest class "
                            f"has {counts.min()} (lower folds or add images)")
        kfold = StratifiedKFold(folds, shuffle=True, random_state=seed)
        return list(kfold.split(np.zeros(n), labels)), f"stratified {folds}-fold (seed {seed})"
    if not 0 < test_size < 1:
        raise ConfigError(f"test_size must be in (0, 1), got {test_size}")
    try:
        train, test = train_test_split(np.arange(n), test_size=test_size, stratify=labels, random_state=seed)
    except ValueError as err:
        raise DataError(f"cannot make a stratified holdout of {n} images in {len(counts)} classes "
                        f"(smallest class: {counts.min()} images): {err}") from err
    return [(np.sort(train), np.sort(test))], f"stratified holdout {test_size:g} (seed {seed})"


class _Runner:
    """Runs one method over the splits; holds the pooled features and the shared settings."""

    def __init__(self, X: np.ndarray, y: np.ndarray, tokens: np.ndarray | None, *, k: int, metric: str,
                 weights: str, pca_dim: int, perplexity: float, tsne_protocol: str, n_jobs: int, seed: int,
                 device: str, params: Mapping[str, Mapping[str, Any]], fit_on: np.ndarray | None, fit_on_name: str,
                 min_train: int):
        self.X, self.y, self.tokens = X, y, tokens
        self.min_train = min_train
        self.knn = {"n_neighbors": k, "metric": metric, "weights": weights}
        self.plane_knn = {"n_neighbors": k, "metric": "euclidean", "weights": weights}
        self.pca_dim, self.perplexity, self.tsne_protocol = pca_dim, perplexity, tsne_protocol
        self.n_jobs, self.seed, self.device = n_jobs, seed, device
        self.params, self.fit_on, self.fit_on_name = params, fit_on, fit_on_name

    def estimator(self, method: str):
        """A fresh estimator for ``method`` with the run's settings and the caller's overrides."""
        base: dict[str, Any] = {"random_state": self.seed}
        if method == "tsne-knn":
            base.update(n_pca=self.pca_dim, perplexity=self.perplexity, n_jobs=self.n_jobs)
            cls = PCATSNE
        elif method in ("linear", "attentive"):
            base["device"] = self.device
            from .probes import AttentiveProbe, LinearProbe

            cls = LinearProbe if method == "linear" else AttentiveProbe
        else:
            base["device"] = self.device
            if method == "ptsne" and self.perplexity is not None:
                base["perplexity"] = self.perplexity
            from . import reduce

            cls = getattr(reduce, _REDUCERS[method])
        return cls(**{**base, **self.params.get(method, {})})

    def shared_map(self, method: str) -> np.ndarray | None:
        """The 2-D map of all images when it does not depend on the split (t-SNE paper protocol,
        or a parametric map fitted on another feature set)."""
        if method == "tsne-knn" and self.tsne_protocol == "paper":
            return self.estimator(method).fit_transform(self.X)
        if method in PARAMETRIC_METHODS and self.fit_on is not None:
            return self.estimator(method).fit(self.fit_on).transform(self.X)
        return None

    def predict(self, method: str, tr: np.ndarray, te: np.ndarray,
                shared: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """Predicted labels of the ``te`` images and, for 2-D methods, the map of ``tr`` then ``te``."""
        X, y = self.X, self.y
        if method == "knn":
            return KNNClassifier(**self.knn).fit(X[tr], y[tr]).predict(X[te]), None
        if method == "pca-knn":
            model = pca_knn(pca_components(self.pca_dim, len(tr), X.shape[1]), self.seed, **self.knn)
            return model.fit(X[tr], y[tr]).predict(X[te]), None
        if method == "linear":
            return self.estimator(method).fit(X[tr], y[tr]).predict(X[te]), None
        if method == "attentive":
            return self.estimator(method).fit(self.tokens[tr], y[tr]).predict(self.tokens[te]), None
        if shared is not None:
            z_tr, z_te = shared[tr], shared[te]
        else:
            reducer = self.estimator(method)
            z_tr = reducer.fit_transform(X[tr])
            z_te = reducer.transform(X[te])
        pred = KNNClassifier(**self.plane_knn).fit(z_tr, y[tr]).predict(z_te)
        return pred, np.concatenate([z_tr, z_te])

    def detail(self, method: str) -> str:
        """How ``method`` was run, for the report's protocol column."""
        knn = f"k={self.knn['n_neighbors']} {self.knn['metric']} {self.knn['weights']}"
        plane = f"k={self.knn['n_neighbors']} euclidean {self.knn['weights']}"
        pca = f"PCA {pca_components(self.pca_dim, self.min_train, self.X.shape[1])} axes"
        if method == "knn":
            return knn
        if method == "pca-knn":
            return f"{pca}; {knn}"
        if method == "tsne-knn":
            fit = ("t-SNE fit on all images (paper protocol)" if self.tsne_protocol == "paper"
                   else "t-SNE fit on train, test placed by transform")
            return f"{pca} + {fit}; {plane}"
        if method in ("linear", "attentive"):
            est = self.estimator(method)
            return f"{est.epochs} epochs {est.optimizer} lr {est.lr:g}"
        fit = f"fit on {self.fit_on_name}" if self.fit_on is not None else "fit on train"
        return f"{fit}; {plane}"


def evaluate_features(train: FeatureSet, test: FeatureSet | None = None, methods: Sequence[str] = TABLE3_METHODS, *,
                      fit_on: FeatureSet | None = None, settings: EvaluationSettings | None = None,
                      names: Mapping[str, str] | None = None, **options: Any) -> EvaluationReport:
    """Accuracy of each of ``methods`` on held-out images of ``train`` (or on ``test`` when given)
    (IPOL sec. 6, Tables 3 and 4).

    Token features (N, K, D) feed the attentive probe and are mean-pooled for every other method;
    the training set needs at least two classes.

    Args:
        train: labelled features; the evaluation's training images (all of them when ``test`` is
            given, else split by ``folds`` / ``test_size``).
        test: labelled features scored by the methods fitted on ``train``; None: held-out parts of ``train``.
        methods: names from :data:`~maelens.choices.EVALUATION_METHODS` (Table 3's ``knn``, ``pca-knn``,
            ``tsne-knn`` by default).
        fit_on: another feature set on which the parametric maps (``vae-gauss``, ``vae-t``, ``ptsne``) are
            fitted before mapping the evaluated images (Table 4: fitted on ImageNet, applied to weather scenes).
        settings: how to evaluate (:class:`EvaluationSettings`); ``options`` (its field names, e.g. ``k=5``)
            replace single fields.
        names: labels of the inputs in messages (keys ``train``, ``test``, ``fit_on``).

    Returns an :class:`EvaluationReport`: accuracy with a Wilson 95% interval per method, the protocol
    used, and the 2-D maps of the plane methods.
    """
    unknown = sorted(set(options) - {f.name for f in fields(EvaluationSettings)})
    if unknown:
        raise TypeError(f"evaluate_features() got unexpected keyword argument(s) {', '.join(unknown)}")
    s = replace(settings or EvaluationSettings(), **options)
    names = {"train": "features", "test": "test features", "fit_on": "fit-on features", **(names or {})}
    params = dict(s.params or {})
    check_methods(list(methods) + list(params), fit_on=fit_on is not None)
    _check_settings(s.pca_dim, s.perplexity, s.tsne_protocol)
    check_inputs(train, test, fit_on, methods, names)
    parts = [train] + ([test] if test is not None else [])
    X = np.concatenate([vectors(fs) for fs in parts]).astype(np.float32, copy=False)
    y = np.concatenate([fs.labels for fs in parts])
    tokens = np.concatenate([fs.features for fs in parts]) if train.features.ndim == 3 else None
    splits, split_desc = make_splits(y, n_train=len(train) if test is not None else None, folds=s.folds,
                                     test_size=s.test_size, seed=s.seed)
    min_train = min(len(tr) for tr, _ in splits)
    pca_dim = resolve_pca_dim(s.pca_dim, min_train, int(X.shape[1]), methods)
    if "tsne-knn" in methods:  # a given perplexity the t-SNE fit cannot reach is refused before any work
        resolve_perplexity(s.perplexity, len(y) if s.tsne_protocol == "paper" else min_train)
    if any(m not in NO_KNN_METHODS for m in methods):
        k = resolve_k(s.k, min_train)
    else:
        k = s.k if s.k is not None else DEFAULT_NEIGHBOURS  # unused: no method votes
    runner = _Runner(X, y, tokens, k=k, metric=s.metric, weights=s.weights, pca_dim=pca_dim,
                     perplexity=s.perplexity, tsne_protocol=s.tsne_protocol, n_jobs=s.n_jobs, seed=s.seed,
                     device=s.device, params=params, fit_on=vectors(fit_on) if fit_on is not None else None,
                     fit_on_name=names["fit_on"], min_train=min_train)
    scored = [_score(runner, method, splits, y, split_desc)
              for method in tqdm(methods, desc="evaluate", disable=s.quiet, unit="method")]
    results = [result for result, _ in scored]
    maps = {method: plane for method, (_, plane) in zip(methods, scored) if plane is not None}
    record = {"methods": list(methods), "k": k, "metric": s.metric, "weights": s.weights, "pca_dim": pca_dim,
              "perplexity": s.perplexity, "tsne_protocol": s.tsne_protocol, "folds": s.folds,
              "test_size": s.test_size, "seed": s.seed, "params": params, "n_images": len(y),
              "n_classes": int(len(np.unique(y))), "feature_dim": int(X.shape[1]), "split": split_desc,
              "inputs": {key: names[key] for key, fs in (("train", train), ("test", test), ("fit_on", fit_on))
                         if fs is not None},
              "extraction": train.settings}
    return EvaluationReport(results=results, settings=record, maps=maps)


def _score(runner: _Runner, method: str, splits: list[tuple[np.ndarray, np.ndarray]], y: np.ndarray,
           split_desc: str) -> tuple[MethodResult, PlaneMap | None]:
    """One method's accuracy over every split (correct answers summed over the folds, Wilson interval) and
    the 2-D map of its first fold when it draws one."""
    shared = runner.shared_map(method)
    correct = total = 0
    plane_map = None
    for fold, (tr, te) in enumerate(splits):
        pred, plane = runner.predict(method, tr, te, shared)
        correct += int((pred == y[te]).sum())
        total += len(te)
        if plane is not None and fold == 0:
            order = np.concatenate([tr, te])
            plane_map = PlaneMap(coords=plane, labels=y[order], test=np.isin(order, te))
    low, high = wilson_interval(correct, total)
    return MethodResult(method, correct / total, low, high, total, f"{split_desc}; {runner.detail(method)}",
                        correct), plane_map

__all__ = ["DEFAULT_PCA_DIM", "EvaluationReport", "EvaluationSettings", "KNNClassifier", "METRICS", "MethodResult",
    "PCA_METHODS", "PlaneMap",
    "WEIGHTS", "check_class_names", "check_classes", "check_compatible", "check_inputs", "check_labelled",
    "check_methods", "check_same_classes", "evaluate_features", "make_splits", "pca_knn", "resolve_k",
    "resolve_pca_dim", "smallest_training_split", "vector_dim", "vectors"]
