"""The synthetic attention experiment of IPOL sec. 5 (Figs. 5-6): one single-head self-attention
layer with random weights applied to i.i.d. inputs tends to produce Gaussian outputs, because each
output is a weighted sum of many independent terms.

The paper writes the layer as ``softmax(X Wq Wk^T X^T / sqrt(n)) X Wv`` with ``n`` the number of
tokens, not the usual ``sqrt(d_k)``; ``scale="tokens"`` (default) follows the paper and
``scale="dim"`` uses ``sqrt(d_k)``. "Uniform initialisation" is read as PyTorch's ``nn.Linear``
default, U(-1/sqrt(d), 1/sqrt(d)) (``init="uniform"``); ``init="uniform01"`` is
``nn.init.uniform_``'s U(0, 1), whose all-positive weights make the logits so large that the
softmax is one-hot: every output token is then a copy of one value row, so a sample of n tokens
holds each value n times and the KS test (which assumes distinct values) rejects more often.
One layer is drawn and applied to every sample, as a trained layer would be.
Weights are drawn block by block (about 2^21 values at a time), so the paper's 4 tokens of
dimension 16,000 (Fig. 5) never hold a 16,000 x 16,000 matrix in memory.
"""

from __future__ import annotations

import numpy as np

from ..choices import ATTENTION_SCALES, INPUT_LAWS, WEIGHT_INITS
from ..errors import ConfigError
from ..validation import check_array_bytes

INITS, SCALES = WEIGHT_INITS, ATTENTION_SCALES
_BLOCK_VALUES = 1 << 21


def draw_inputs(rng: np.random.Generator, law: str, shape: tuple[int, ...], df: float = 1.0) -> np.ndarray:
    """i.i.d. inputs: U(0, 1), chi-square(``df``), N(0, 1), Exp(1) or Laplace(0, 1)."""
    if law == "uniform":
        return rng.random(shape)
    if law == "chi2":
        return rng.chisquare(df, shape)
    if law == "normal":
        return rng.standard_normal(shape)
    if law == "exponential":
        return rng.standard_exponential(shape)
    if law == "laplace":
        return rng.laplace(0.0, 1.0, shape)
    raise ConfigError(f"unknown input law {law!r}; choose one of {', '.join(INPUT_LAWS)}")


def draw_weights(rng: np.random.Generator, init: str, fan_in: int, fan_out: int, cols: int) -> np.ndarray:
    """A (fan_in, cols) block of a (fan_in, fan_out) projection: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    (``uniform``), U(0, 1) (``uniform01``), Xavier uniform U(-a, a) with a = sqrt(6 / (fan_in +
    fan_out)) (``xavier``), or N(0, 1 / fan_in) (``normal``)."""
    if init == "uniform":
        bound = 1.0 / np.sqrt(fan_in)
        return rng.uniform(-bound, bound, (fan_in, cols))
    if init == "uniform01":
        return rng.random((fan_in, cols))
    if init == "xavier":
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-bound, bound, (fan_in, cols))
    if init == "normal":
        return rng.normal(0.0, 1.0 / np.sqrt(fan_in), (fan_in, cols))
    raise ConfigError(f"unknown weight initialisation {init!r}; choose one of {', '.join(INITS)}")


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax."""
    shifted = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def self_attention(x: np.ndarray, rng: np.random.Generator, *, head_dim: int, init: str = "uniform",
                   scale: str = "tokens") -> np.ndarray:
    """Single-head self-attention (S, n, d) -> (S, n, head_dim) with weights drawn from ``rng``."""
    if scale not in SCALES:
        raise ConfigError(f"unknown attention scale {scale!r}; choose one of {', '.join(SCALES)}")
    samples, tokens, dim = x.shape
    block = max(1, min(head_dim, _BLOCK_VALUES // dim))
    logits = np.zeros((samples, tokens, tokens))
    values = np.empty((samples, tokens, head_dim))
    for start in range(0, head_dim, block):
        cols = min(block, head_dim - start)
        q = x @ draw_weights(rng, init, dim, head_dim, cols)
        k = x @ draw_weights(rng, init, dim, head_dim, cols)
        values[:, :, start:start + cols] = x @ draw_weights(rng, init, dim, head_dim, cols)
        logits += q @ k.transpose(0, 2, 1)
    logits /= np.sqrt(tokens if scale == "tokens" else head_dim)
    return softmax(logits) @ values


def synthetic_attention_samples(samples: int = 1000, tokens: int = 4, dim: int = 160, *,
                                head_dim: int | None = None, input: str = "chi2", input_df: float = 1.0,
                                init: str = "uniform", scale: str = "tokens", seed: int = 0) -> np.ndarray:
    """Outputs (samples, tokens * head_dim) of one random self-attention layer on i.i.d. inputs.

    Defaults are the paper's Fig. 6 set-up (1,000 samples of 4 tokens x 160 from a chi-square law;
    its df is not stated, 1 is used); Fig. 5 is ``samples=1, dim=16000, input="uniform"``.
    ``head_dim`` defaults to ``dim``.
    """
    head_dim = dim if head_dim is None else head_dim
    for name, value in (("samples", samples), ("tokens", tokens), ("dim", dim), ("head_dim", head_dim)):
        if value < 1:
            raise ConfigError(f"{name} must be >= 1, got {value}")
    if input == "chi2" and input_df <= 0:
        raise ConfigError(f"the chi-square input needs df > 0, got {input_df}")
    # the inputs, queries, keys and values are each samples x tokens x max(dim, head_dim) float64 values
    check_array_bytes((samples, tokens, max(dim, head_dim), 4), 8, "the synthetic inputs and projections",
                      "samples x tokens x dim x 4")
    rng = np.random.default_rng(seed)
    x = draw_inputs(rng, input, (samples, tokens, dim), input_df)
    out = self_attention(x, rng, head_dim=head_dim, init=init, scale=scale)
    return out.reshape(samples, tokens * head_dim)

__all__ = ["INITS", "INPUT_LAWS", "SCALES", "draw_inputs", "draw_weights", "self_attention", "softmax",
    "synthetic_attention_samples"]
