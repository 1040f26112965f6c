"""Fixed 2-D sine-cosine position embeddings, as in MAE (half the channels encode rows, half columns)."""

from __future__ import annotations

import numpy as np


def sincos_1d(embed_dim: int, positions: np.ndarray) -> np.ndarray:
    """(M,) positions -> (M, embed_dim): sin of the first half of the frequencies, cos of the second."""
    if embed_dim % 2:
        raise ValueError(f"embed_dim must be even, got {embed_dim}")
    omega = np.arange(embed_dim // 2, dtype=np.float64) / (embed_dim / 2.0)
    omega = 1.0 / 10000**omega
    out = np.einsum("m,d->md", positions.reshape(-1).astype(np.float64), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d(embed_dim: int, grid_size: tuple[int, int], cls_token: bool = True) -> np.ndarray:
    """(rows*cols [+1], embed_dim) table; the CLS row (first, when requested) is all zeros.

    Row-major patch order; the first half of the channels encodes the column (w) coordinate and
    the second half the row (h) coordinate, matching the official MAE tables bit for bit.
    """
    if embed_dim % 4:
        raise ValueError(f"embed_dim must be a multiple of 4 for 2-D sin-cos, got {embed_dim}")
    rows, cols = grid_size
    grid_w, grid_h = np.meshgrid(np.arange(cols, dtype=np.float32), np.arange(rows, dtype=np.float32))
    emb = np.concatenate([sincos_1d(embed_dim // 2, grid_w), sincos_1d(embed_dim // 2, grid_h)], axis=1)
    if cls_token:
        emb = np.concatenate([np.zeros((1, embed_dim)), emb], axis=0)
    return emb.astype(np.float32)

__all__ = ["sincos_1d", "sincos_2d"]
