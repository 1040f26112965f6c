"""The settings of a representation evaluation, in a module of their own that imports neither numpy nor
scikit-learn, so the command line reads its defaults without loading them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class EvaluationSettings:
    """How :func:`evaluate_features` evaluates (IPOL sec. 6, Tables 3 and 4).

    Attributes:
        k: neighbours of every kNN vote; None: :data:`~maelens.choices.DEFAULT_NEIGHBOURS` (the paper's 20), or
            all training images when fewer. A given ``k`` above the training images is an error.
        metric: kNN distance, ``cosine`` or ``euclidean``.
        weights: kNN vote, ``uniform``, ``distance`` or ``exp`` (see :class:`KNNClassifier`).
        pca_dim: PCA axes before kNN and before t-SNE; None: Table 3's 50, lowered to the data's rank bound
            when smaller. A given value above that bound is an error, never lowered.
        perplexity: t-SNE perplexity; None: 30, capped at (N - 1) / 3 for small sets (a given value is never
            capped: one too large for the training images is an error).
        tsne_protocol: ``transform`` (fit the map on the training images, place the test images with
            openTSNE's ``transform``) or ``paper`` (fit t-SNE on all images at once, as the paper does).
        n_jobs: threads of openTSNE.
        folds: stratified k-fold cross-validation when > 1 and no test set; 0: one stratified holdout.
        test_size: share of the training features held out when ``folds`` is 0 and no test set.
        seed: seeds the splits and every stochastic method.
        params: per-method estimator overrides, e.g. ``{"linear": {"epochs": 20}}``.
        device: torch device of the probes and parametric maps.
        quiet: no progress bars.
    """

    k: int | None = None
    metric: str = "cosine"
    weights: str = "uniform"
    pca_dim: int | None = None
    perplexity: float | None = None
    tsne_protocol: str = "transform"
    n_jobs: int = 1
    folds: int = 0
    test_size: float = 0.25
    seed: int = 0
    params: Mapping[str, Mapping[str, Any]] | None = None
    device: str = "cpu"
    quiet: bool = False


__all__ = ["EvaluationSettings"]
