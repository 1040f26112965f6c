"""Two-dimensional maps of encoder features (IPOL sec. 6 "Dimension reduction for visualization").

- :class:`PCATSNE`: PCA to 50 axes then t-SNE with openTSNE (FFT-accelerated for large sets), the map of Table 3
  and Figs. 13-14. New points are placed into a fitted map with openTSNE's ``transform`` (each
  new point is optimised against the fixed reference embedding).
- :class:`GaussianVAE`, :class:`StudentTVAE`: variational autoencoders with a 2-D latent whose
  decoder outputs a Gaussian, or a Student-t likelihood with learned location, scale and degrees
  of freedom per feature (Takahashi et al. 2018); Table 4, "Gaussian VAE" and "Student VAE".
- :class:`ParametricTSNE`: an MLP trained with the t-SNE loss over minibatches (van der Maaten
  2009), Table 4 "Parametric t-sne". As in that paper the data are split once into fixed batches
  whose input affinities are perplexity-calibrated once (the IPOL paper cites the perplexity-free
  variant of Crecchi et al. 2020; this is the original one).

The VAEs and the parametric t-SNE are parametric: fit them on one feature set, ``transform``
another (Table 4 fits on ImageNet features and maps the weather-scene features).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted
from torch import nn

from ..errors import ConfigError, DataError
from ._fit import fit_minibatches, make_optimizer, seeded
from ._validation import fitted_input, samples, seed_from
from .tsne import PCATSNE, pca_components

MIN_SCALE = 1e-3  # floor on the decoder's scale: a likelihood with free variance can otherwise diverge
MIN_DF = 0.1  # floor on the Student-t degrees of freedom
# Cap on the Gaussian precision of the affinities: distances are scaled to mean 1, so a larger one
# only amplifies round-off between tied neighbours when a perplexity is out of reach.
MAX_PRECISION = 1e8
_CHUNK = 4096  # samples per forward pass at transform time


def mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers of the given widths with GELU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


class _Standardized(TransformerMixin, BaseEstimator):
    """Shared plumbing of the parametric reducers: per-feature standardisation learnt at ``fit``
    and batched inference with the fitted network."""

    def _prepare(self, X) -> torch.Tensor:
        """``X`` of a fitted reducer, standardised, on its device (``NotFittedError`` before ``fit``)."""
        return self._scaled(fitted_input(self, X, dtype=np.float32))

    def _scaled(self, X: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((X - self.mean_) / self.scale_).to(self.device)

    def _learn_scaling(self, X) -> torch.Tensor:
        X = check_array(X, dtype=np.float32)
        if len(X) < 2:
            raise DataError(f"{type(self).__name__} needs at least 2 samples to fit, got {samples(len(X))}")
        self.n_features_in_ = X.shape[1]
        self.mean_ = X.mean(axis=0)
        self.scale_ = np.maximum(X.std(axis=0), 1e-6).astype(np.float32)
        return self._scaled(X)

    def _map(self, net: nn.Module, X) -> np.ndarray:
        xt = self._prepare(X)
        with torch.no_grad():
            return torch.cat([net(xt[i:i + _CHUNK]).cpu() for i in range(0, len(xt), _CHUNK)]).double().numpy()


class _VAE(_Standardized, ABC):
    """Encoder q(z|x) = N(mu(x), diag sigma^2(x)) with a ``n_components``-D latent and prior N(0, I);
    the decoder's likelihood is given by the subclass. Inputs are standardised per feature."""

    _outputs: int  # likelihood parameters per input feature

    def __init__(self, n_components: int = 2, hidden: Sequence[int] = (256, 128), epochs: int = 100,
                 batch_size: int = 256, lr: float = 1e-3, weight_decay: float = 0.0, beta: float = 1.0,
                 random_state: int | None = None, device: str = "cpu", quiet: bool = True):
        self.n_components = n_components
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.beta = beta
        self.random_state = random_state
        self.device = device
        self.quiet = quiet

    def fit(self, X, y=None) -> "_VAE":
        """Maximise the ELBO on ``X`` (N, F); ``loss_curve_`` holds the mean negative ELBO per epoch."""
        xt = self._learn_scaling(X)
        seed = seed_from(self.random_state)
        f, hidden = xt.shape[1], list(self.hidden)
        with seeded(seed):
            self.encoder_ = mlp([f, *hidden, 2 * self.n_components]).to(self.device)
            self.decoder_ = mlp([self.n_components, *hidden[::-1], self._outputs * f]).to(self.device)
        params = list(self.encoder_.parameters()) + list(self.decoder_.parameters())
        optimizer = make_optimizer(params, "adamw", self.lr, self.weight_decay)
        noise = torch.Generator(device=self.device).manual_seed(seed)

        def loss_fn(xb: torch.Tensor) -> torch.Tensor:
            mu, logvar = self.encoder_(xb).chunk(2, dim=1)
            eps = torch.randn(mu.shape, generator=noise, device=mu.device)
            z = mu + torch.exp(0.5 * logvar) * eps
            return self._negative_elbo(xb, z, mu, logvar).mean()

        self.loss_curve_ = fit_minibatches(nn.ModuleList([self.encoder_, self.decoder_]), loss_fn, (xt,),
                                           epochs=self.epochs, batch_size=self.batch_size, optimizer=optimizer,
                                           seed=seed, desc=type(self).__name__, quiet=self.quiet)
        return self

    def _negative_elbo(self, x: torch.Tensor, z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """Per-sample -log p(x|z) + beta KL(q(z|x) || N(0, I)), shape (B,)."""
        kl = 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(dim=1)
        return -self.log_likelihood(x, self.decoder_(z)).sum(dim=1) + self.beta * kl

    @abstractmethod
    def log_likelihood(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """log p(x | decoder output), elementwise (B, F)."""

    def transform(self, X) -> np.ndarray:
        """Posterior means (N, n_components): the 2-D map of Table 4."""
        check_is_fitted(self, "encoder_")
        return self._map(self.encoder_, X)[:, :self.n_components]

    def score(self, X, y=None) -> float:
        """Mean ELBO per sample (nats), with the latent at its posterior mean; higher is better."""
        check_is_fitted(self, "encoder_")
        xt = self._prepare(X)
        with torch.no_grad():
            mu, logvar = self.encoder_(xt).chunk(2, dim=1)
            return float(-self._negative_elbo(xt, mu, mu, logvar).mean())


class GaussianVAE(_VAE):
    """VAE whose decoder outputs a Gaussian N(mu, sigma^2) per feature (learned sigma)."""

    _outputs = 2

    def log_likelihood(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        loc, raw_scale = params.chunk(2, dim=1)
        scale = F.softplus(raw_scale) + MIN_SCALE
        return -0.5 * math.log(2 * math.pi) - torch.log(scale) - 0.5 * ((x - loc) / scale).square()


class StudentTVAE(_VAE):
    """Student-t VAE (Takahashi et al. 2018): the decoder outputs location, scale and degrees of
    freedom of a Student-t per feature, which tolerates heavy-tailed features (IPOL sec. 5 finds
    encoder outputs Student-t distributed)."""

    _outputs = 3

    def log_likelihood(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        loc, raw_scale, raw_df = params.chunk(3, dim=1)
        scale = F.softplus(raw_scale) + MIN_SCALE
        df = F.softplus(raw_df) + MIN_DF
        return (torch.lgamma(0.5 * (df + 1)) - torch.lgamma(0.5 * df) - 0.5 * torch.log(math.pi * df)
                - torch.log(scale) - 0.5 * (df + 1) * torch.log1p(((x - loc) / scale).square() / df))


def squared_distances(x: torch.Tensor) -> torch.Tensor:
    """Pairwise squared Euclidean distances (B, B) of the rows of ``x`` (B, F)."""
    sq = x.square().sum(dim=1)
    return (sq[:, None] + sq[None, :] - 2.0 * x @ x.T).clamp_min(0.0)


def conditional_affinities(x: torch.Tensor, perplexity: float, n_steps: int = 64) -> torch.Tensor:
    """Row-stochastic p(j|i) (B, B) of the rows of ``x`` (B, F), float64 (van der Maaten & Hinton 2008).

    Each row's Gaussian precision is found by bisection, all rows at once, so that the entropy of
    p(.|i) in nats equals log(perplexity); the perplexity is capped at max(1, (B - 1) / 3). Where
    ties make it unreachable (e.g. two equally near neighbours and perplexity 1), the row is as
    peaked as the ties allow.
    """
    b = x.shape[0]
    d = squared_distances(x.double())
    d = d / d[~torch.eye(b, dtype=torch.bool, device=d.device)].mean().clamp_min(1e-12)
    d.fill_diagonal_(float("inf"))
    d = d - d.min(dim=1, keepdim=True).values  # row minimum at 0 keeps exp() in range; p(j|i) unchanged
    target = math.log(min(perplexity, max(1.0, (b - 1) / 3)))
    lo = torch.zeros(b, 1, dtype=d.dtype, device=d.device)
    hi = torch.full_like(lo, float("inf"))
    beta = torch.ones_like(lo)
    for _ in range(n_steps):
        p = torch.exp(-d * beta)
        total = p.sum(dim=1, keepdim=True)
        entropy = torch.log(total) + beta * torch.nan_to_num(d * p, nan=0.0).sum(dim=1, keepdim=True) / total
        too_flat = entropy > target  # entropy too high: sharpen (raise beta)
        lo = torch.where(too_flat, beta, lo)
        hi = torch.where(too_flat, hi, beta)
        beta = torch.where(torch.isinf(hi), beta * 2.0, 0.5 * (lo + hi)).clamp_max(MAX_PRECISION)
    p = torch.exp(-d * beta)
    return p / p.sum(dim=1, keepdim=True)


def perplexity_affinities(x: torch.Tensor, perplexity: float) -> torch.Tensor:
    """Symmetric t-SNE input affinities P = (P_cond + P_cond^T) / 2B (B, B), summing to 1."""
    p = conditional_affinities(x, perplexity)
    return ((p + p.T) / (2.0 * len(p))).to(x.dtype)


def tsne_kl(p: torch.Tensor, y: torch.Tensor, dof: float = 1.0) -> torch.Tensor:
    """KL(P || Q) with Q the Student-t (``dof`` degrees of freedom) affinities of embedding ``y`` (B, d)."""
    w = (1.0 + squared_distances(y) / dof).pow(-(dof + 1.0) / 2.0)
    w = w * (1.0 - torch.eye(len(y), device=y.device, dtype=y.dtype))
    q = w / w.sum()
    return (p * (torch.log(p.clamp_min(1e-12)) - torch.log(q.clamp_min(1e-12)))).sum()


class ParametricTSNE(_Standardized):
    """An MLP x -> y in ``n_components`` dimensions trained to minimise the t-SNE loss KL(P || Q)
    (van der Maaten 2009). The samples are shuffled once (seeded) into fixed batches of about
    ``batch_size``; P is perplexity-calibrated within each batch, once; each epoch visits the batches
    in a new order. Q is a Student-t kernel with ``dof`` degrees of freedom. Inputs are
    standardised per feature."""

    def __init__(self, n_components: int = 2, perplexity: float = 30.0, hidden: Sequence[int] = (256, 256),
                 dof: float = 1.0, epochs: int = 50, batch_size: int = 500, lr: float = 1e-3,
                 weight_decay: float = 0.0, random_state: int | None = None, device: str = "cpu",
                 quiet: bool = True):
        self.n_components = n_components
        self.perplexity = perplexity
        self.hidden = hidden
        self.dof = dof
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.random_state = random_state
        self.device = device
        self.quiet = quiet

    def fit(self, X, y=None) -> "ParametricTSNE":
        """Train the network on ``X`` (N, F); ``loss_curve_`` holds the mean batch KL per epoch."""
        if self.perplexity <= 1 or self.dof <= 0:
            raise ConfigError(f"ParametricTSNE: perplexity must be > 1 and dof > 0, "
                              f"got {self.perplexity} and {self.dof}")
        xt = self._learn_scaling(X)
        if len(xt) < 4:
            raise DataError(f"ParametricTSNE needs at least 4 samples, got {samples(len(xt))}")
        seed = seed_from(self.random_state)
        with seeded(seed):
            self.network_ = mlp([xt.shape[1], *self.hidden, self.n_components]).to(self.device)
        optimizer = make_optimizer(self.network_.parameters(), "adamw", self.lr, self.weight_decay)
        size = max(4, self.batch_size)
        order = torch.randperm(len(xt), generator=torch.Generator().manual_seed(seed))
        groups = list(torch.tensor_split(order, -(-len(xt) // size)))
        affinities = [perplexity_affinities(xt[g], self.perplexity) for g in groups]
        group_of = torch.empty(len(xt), dtype=torch.int64)
        for i, g in enumerate(groups):
            group_of[g] = i

        def loss_fn(xb: torch.Tensor, gb: torch.Tensor) -> torch.Tensor:
            return tsne_kl(affinities[int(gb[0])], self.network_(xb), self.dof)

        self.loss_curve_ = fit_minibatches(self.network_, loss_fn, (xt, group_of.to(xt.device)), epochs=self.epochs,
                                           batch_size=size, optimizer=optimizer, seed=seed, desc="ParametricTSNE",
                                           quiet=self.quiet, groups=[g.to(xt.device) for g in groups])
        return self

    def transform(self, X) -> np.ndarray:
        """Map features (N, F) to (N, n_components)."""
        check_is_fitted(self, "network_")
        return self._map(self.network_, X)

    def score(self, X, y=None) -> float:
        """Minus the mean t-SNE KL over consecutive batches of ``batch_size`` samples; higher is better."""
        check_is_fitted(self, "network_")
        xt = self._prepare(X)
        size = max(4, self.batch_size)
        with torch.no_grad():
            kls = [float(tsne_kl(perplexity_affinities(xb, self.perplexity), self.network_(xb), self.dof))
                   for xb in torch.split(xt, size) if len(xb) >= 4]
        if not kls:
            raise DataError(f"ParametricTSNE.score needs at least 4 samples, got {len(xt)}")
        return -float(np.mean(kls))

__all__ = ["GaussianVAE", "MAX_PRECISION", "MIN_DF", "MIN_SCALE", "PCATSNE", "ParametricTSNE", "StudentTVAE",
    "conditional_affinities", "mlp", "pca_components", "perplexity_affinities", "squared_distances", "tsne_kl"]
