"""The PCA + t-SNE map of IPOL sec. 6 (Table 3, Figs. 13-14), on numpy and openTSNE only (no torch, so
that evaluating stored features starts fast): PCA to 50 axes, then t-SNE with openTSNE (FFT-accelerated
for large sets); new points are placed into a fitted map with openTSNE's ``transform`` (each new point
optimised against the fixed reference embedding).

Why not openTSNE's own scikit-learn wrapper (``openTSNE.sklearn.TSNE``): :class:`PCATSNE` is the paper's
two-step map, PCA to 50 axes then t-SNE, with the perplexity capped for small sets and the fitted
``TSNEEmbedding`` kept for ``transform``; it calls openTSNE's ``TSNE`` directly for the second step, which is
what that wrapper does too."""

from __future__ import annotations

import math

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.utils.validation import check_array

from ..errors import ConfigError, DataError
from ._validation import fitted_input, samples, seed_from


def pca_components(n_components: int, n_samples: int, n_features: int) -> int:
    """Axes kept by the PCA step: ``n_components`` capped by the data's rank bound (Table 3 uses 50)."""
    return max(1, min(n_components, n_features, n_samples))


#: t-SNE perplexity when none is given (openTSNE's and the paper's usual value).
DEFAULT_PERPLEXITY = 30.0


def resolve_perplexity(perplexity: float | None, n: int) -> float:
    """The perplexity t-SNE uses on ``n`` points: :data:`DEFAULT_PERPLEXITY` capped at (n - 1) / 3 when not
    given; a given value above (n - 1) / 3 (too few neighbours to calibrate it) is a ConfigError (issue 30)."""
    bound = (n - 1) / 3
    if perplexity is None:
        return min(DEFAULT_PERPLEXITY, bound)
    if perplexity > bound:
        raise ConfigError(f"perplexity {perplexity:g} needs at least {math.ceil(3 * perplexity + 1)} points, and t-SNE "
                          f"is fitted on {n} here (at most perplexity {bound:g}); choose a smaller perplexity")
    return float(perplexity)


class PCATSNE(TransformerMixin, BaseEstimator):
    """PCA to ``n_pca`` axes, then t-SNE to ``n_components`` dimensions with openTSNE.

    ``fit_transform`` returns the embedding of the fitted points; ``transform`` places new points
    into that embedding (openTSNE ``TSNEEmbedding.transform``). ``perplexity`` None means
    :data:`DEFAULT_PERPLEXITY` capped at (N - 1) / 3 so that small sets still have enough neighbours; a given
    perplexity above that bound is a ConfigError, never lowered. ``negative_gradient_method``:
    ``"fft"`` (interpolation, for large N), ``"bh"`` (Barnes-Hut), or ``"auto"`` (openTSNE's
    choice: Barnes-Hut below 10,000 points, where the FFT grid's fixed cost dominates, FFT above).
    """

    def __init__(self, n_components: int = 2, n_pca: int = 50, perplexity: float | None = None, n_iter: int = 500,
                 negative_gradient_method: str = "auto", n_jobs: int = 1, random_state: int | None = None):
        self.n_components = n_components
        self.n_pca = n_pca
        self.perplexity = perplexity
        self.n_iter = n_iter
        self.negative_gradient_method = negative_gradient_method
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X, y=None) -> "PCATSNE":
        """Fit PCA and the t-SNE map on ``X`` (N, F)."""
        from openTSNE import TSNE

        X = check_array(X, dtype=np.float64)
        if len(X) < 4:
            raise DataError(f"t-SNE needs at least 4 samples, got {samples(len(X))}")
        seed = seed_from(self.random_state)
        self.n_features_in_ = X.shape[1]
        self.pca_ = PCA(pca_components(self.n_pca, *X.shape), svd_solver="full", random_state=seed).fit(X)
        perplexity = resolve_perplexity(self.perplexity, len(X))
        tsne = TSNE(n_components=self.n_components, perplexity=perplexity, n_iter=self.n_iter,
                    negative_gradient_method=self.negative_gradient_method, n_jobs=self.n_jobs,
                    random_state=seed)
        self.embedding_ = tsne.fit(self.pca_.transform(X))
        return self

    def fit_transform(self, X, y=None) -> np.ndarray:
        """Fit and return the embedding (N, n_components) of ``X``."""
        return np.asarray(self.fit(X).embedding_, dtype=np.float64)

    def transform(self, X) -> np.ndarray:
        """Embed new points (M, F) into the fitted map -> (M, n_components)."""
        X = fitted_input(self, X, dtype=np.float64)
        return np.asarray(self.embedding_.transform(self.pca_.transform(X)), dtype=np.float64)


__all__ = ["DEFAULT_PERPLEXITY", "PCATSNE", "pca_components", "resolve_perplexity"]
