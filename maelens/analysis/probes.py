"""Supervised probes on frozen encoder features, as scikit-learn classifiers.

- :class:`LinearProbe`: BatchNorm without affine parameters, then a linear layer (MAE, He et al.
  2022, linear probing: the extra BatchNorm normalises the pre-trained features, whose scales
  differ widely between channels).
- :class:`AttentiveProbe`: a cross-attention unit whose query is a learned class token and whose
  keys/values are the patch tokens, then BatchNorm without affine and a linear layer; no MLP and
  no residual connection (CAE, Chen et al., sec. 3 "Attentive probing").
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_consistent_length, column_or_1d
from torch import nn

from ..errors import ConfigError, DataError
from ._fit import fit_minibatches, make_optimizer, seeded
from ._validation import fitted_input, samples, seed_from

_CHUNK = 4096  # samples per forward pass at prediction time


class LinearHead(nn.Module):
    """(B, F) -> BatchNorm1d(affine=False) -> Linear -> (B, C) logits."""

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(in_features, affine=False, eps=1e-6)
        self.head = nn.Linear(in_features, num_classes)
        nn.init.trunc_normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(x))


class CrossAttentionPool(nn.Module):
    """A learned query attends over tokens (B, K, D) -> (B, D): multi-head cross-attention with
    LayerNorm on query and tokens, and no MLP or skip connection (CAE's attentive probe)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.query = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.query, std=0.02)
        self.norm_q = nn.LayerNorm(dim, eps=1e-6)
        self.norm_kv = nn.LayerNorm(dim, eps=1e-6)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def attention(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled (B, D) and the attention weights (B, H, K) of the query over the tokens."""
        b, k, d = tokens.shape
        h = self.num_heads
        q = self.q(self.norm_q(self.query)).reshape(1, h, 1, d // h)
        kv = self.kv(self.norm_kv(tokens)).reshape(b, k, 2, h, d // h).permute(2, 0, 3, 1, 4)
        weights = torch.softmax((q * (d // h) ** -0.5) @ kv[0].transpose(-2, -1), dim=-1)  # (B, H, 1, K)
        pooled = (weights @ kv[1]).transpose(1, 2).reshape(b, d)
        return self.proj(pooled), weights[:, :, 0]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.attention(tokens)[0]


class AttentiveHead(nn.Module):
    """(B, K, D) tokens -> cross-attention pool -> BatchNorm1d(affine=False) -> Linear -> (B, C)."""

    def __init__(self, dim: int, num_classes: int, num_heads: int):
        super().__init__()
        self.pool = CrossAttentionPool(dim, num_heads)
        self.classifier = LinearHead(dim, num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(tokens))


class _Probe(ClassifierMixin, BaseEstimator):
    """Shared fit/predict of the probes; subclasses set ``_ndim`` and build the head in ``_head``."""

    _ndim = 2

    def __init__(self, epochs: int = 100, batch_size: int = 256, lr: float = 1e-3, optimizer: str = "adamw",
                 weight_decay: float = 0.0, random_state: int | None = None, device: str = "cpu",
                 quiet: bool = True):
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.random_state = random_state
        self.device = device
        self.quiet = quiet

    def _check_X(self, X) -> np.ndarray:
        return self._check_ndim(check_array(X, dtype=np.float32, allow_nd=True))

    def _check_ndim(self, X: np.ndarray) -> np.ndarray:
        if X.ndim != self._ndim:
            expected = ("(N, F) features" if self._ndim == 2
                        else "(N, K, D) patch tokens (features pooled with 'tokens')")
            raise DataError(f"{type(self).__name__} expects {expected}, got an array of shape {X.shape}")
        return X

    def fit(self, X, y) -> "_Probe":
        """Train the head on frozen features ``X`` with labels ``y`` (N,)."""
        X = self._check_X(X)
        y = column_or_1d(y, warn=True)
        check_consistent_length(X, y)
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise DataError(f"{type(self).__name__}: the training labels hold 1 class ({samples(len(y))}); "
                            f"need at least two")
        self.n_features_in_ = int(X.shape[-1])  # F, or the token dimension D (any number of tokens K)
        seed = seed_from(self.random_state)
        device = torch.device(self.device)
        with seeded(seed):
            self.module_ = self._head(X.shape[1:], len(self.classes_)).to(device)
        optimizer = make_optimizer(self.module_.parameters(), self.optimizer, self.lr, self.weight_decay)
        xt = torch.from_numpy(X).to(device)
        yt = torch.from_numpy(y_idx.astype(np.int64)).to(device)

        def loss_fn(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(self.module_(xb), yb)

        self.loss_curve_ = fit_minibatches(self.module_, loss_fn, (xt, yt), epochs=self.epochs,
                                           batch_size=self.batch_size, optimizer=optimizer, seed=seed,
                                           desc=type(self).__name__, quiet=self.quiet)
        return self

    def _fitted_input(self, X) -> np.ndarray:
        return self._check_ndim(fitted_input(self, X, dtype=np.float32, allow_nd=True))

    def logits(self, X) -> np.ndarray:
        """Logits (N, C) in the order of ``classes_``."""
        X = self._fitted_input(X)
        device = next(self.module_.parameters()).device
        with torch.no_grad():
            out = [self.module_(torch.from_numpy(X[i:i + _CHUNK]).to(device)).cpu() for i in range(0, len(X), _CHUNK)]
        return torch.cat(out).numpy()

    def decision_function(self, X) -> np.ndarray:
        """Confidence scores in scikit-learn's shape: the logits (N, C), or for two classes the logit of
        ``classes_[1]`` minus that of ``classes_[0]`` (N,)."""
        z = self.logits(X)
        return z[:, 1] - z[:, 0] if z.shape[1] == 2 else z

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (N, C) (softmax of the logits)."""
        return torch.softmax(torch.from_numpy(self.logits(X)), dim=1).numpy()

    def predict(self, X) -> np.ndarray:
        """Most probable class of each sample (N,)."""
        winners = self.logits(X).argmax(axis=1)  # NotFittedError before reading classes_
        return self.classes_[winners]


class LinearProbe(_Probe):
    """BatchNorm(affine=False) + linear classifier on frozen (N, F) features (MAE linear probing)."""

    _ndim = 2

    def _head(self, shape: tuple[int, ...], num_classes: int) -> nn.Module:
        return LinearHead(shape[0], num_classes)


class AttentiveProbe(_Probe):
    """Learned-query cross-attention over (N, K, D) patch tokens, then BatchNorm(affine=False) +
    linear (CAE attentive probing)."""

    _ndim = 3

    def __init__(self, num_heads: int = 4, epochs: int = 100, batch_size: int = 256, lr: float = 1e-3,
                 optimizer: str = "adamw", weight_decay: float = 0.0, random_state: int | None = None,
                 device: str = "cpu", quiet: bool = True):
        super().__init__(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                         weight_decay=weight_decay, random_state=random_state, device=device, quiet=quiet)
        self.num_heads = num_heads

    def _head(self, shape: tuple[int, ...], num_classes: int) -> nn.Module:
        dim = shape[-1]
        if self.num_heads < 1 or dim % self.num_heads:
            raise ConfigError(f"AttentiveProbe: token dimension {dim} is not divisible by num_heads={self.num_heads}")
        return AttentiveHead(dim, num_classes, self.num_heads)

    def attention_weights(self, X) -> np.ndarray:
        """Attention (N, H, K) of the learned query over each sample's tokens."""
        X = self._fitted_input(X)
        device = next(self.module_.parameters()).device
        with torch.no_grad():
            return self.module_.pool.attention(torch.from_numpy(X).to(device))[1].cpu().numpy()

__all__ = ["AttentiveHead", "AttentiveProbe", "CrossAttentionPool", "LinearHead", "LinearProbe"]
