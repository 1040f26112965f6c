"""Patch masking samplers, vectorised over the batch and reproducible with a ``torch.Generator``.

Every sampler returns ``noise`` (B, L) and ``len_keep``: the ``len_keep`` patches with the
smallest noise are visible, exactly as ``argsort(noise)`` selects them in the official MAE
``random_masking``. This lets one model code path serve every strategy:

- ``random``: the official per-sample uniform shuffle, any ratio (MAE sec. 3).
- ``grid``: keep the top-left patch of every s x s cell (s = 2 for 75%: IPOL sec. 5, MAE Fig. 6).
- ``block``: BEiT Algorithm 1 block-wise masking (blocks of >= 16 patches, aspect ratio in
  [0.3, 1/0.3]), topped up with random patches so every sample hides exactly the same number.
- ``uniform``: UM-MAE uniform sampling, one random visible patch per s x s cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..choices import MASKINGS
from ..errors import ConfigError


@dataclass(frozen=True)
class MaskIds:
    """Indices derived from noise: ``ids_keep`` (B, K), ``ids_restore`` (B, L), ``mask`` (B, L) 1 = removed."""

    ids_keep: torch.Tensor
    ids_restore: torch.Tensor
    mask: torch.Tensor

    @property
    def visible(self) -> torch.Tensor:
        """(B, L) bool, True where the patch is seen by the encoder."""
        return self.mask == 0


def ids_from_noise(noise: torch.Tensor, len_keep: int) -> MaskIds:
    """The official MAE shuffle: ascending argsort of noise; the first ``len_keep`` are kept."""
    batch, length = noise.shape
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    mask = torch.ones(batch, length, device=noise.device)
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, dim=1, index=ids_restore)
    return MaskIds(ids_keep=ids_shuffle[:, :len_keep], ids_restore=ids_restore, mask=mask)


def num_kept(num_patches: int, mask_ratio: float) -> int:
    """Visible patches for a ratio, with the official rounding ``int(L * (1 - ratio))``."""
    if not 0.0 <= mask_ratio < 1.0:
        raise ConfigError(f"mask ratio must be in [0, 1), got {mask_ratio}")
    return int(num_patches * (1 - mask_ratio))


def cell_size(mask_ratio: float) -> int:
    """Side s of the cells for grid/uniform masking: one visible patch per s x s cell, ratio 1 - 1/s^2."""
    if not 0.0 <= mask_ratio < 1.0:
        raise ConfigError(f"mask ratio must be in [0, 1), got {mask_ratio}")
    side = round(math.sqrt(1.0 / (1.0 - mask_ratio)))
    if abs((1 - 1 / side**2) - mask_ratio) > 1e-3:
        raise ConfigError(
            f"grid and uniform masking keep one patch per s x s cell, so the ratio must be 1 - 1/s^2 "
            f"(0, 0.75, 0.889, 0.9375, ...); got {mask_ratio}"
        )
    return side


def _rand(shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(shape, generator=generator)


def _natural_order(batch_size: int, length: int) -> torch.Tensor:
    return torch.arange(length, dtype=torch.float32).expand(batch_size, length).clone()


def _noise_from_visible(visible: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Noise that sorts visible patches (in row-major order) before hidden ones (in random order)."""
    batch, length = visible.shape
    order = torch.arange(length, dtype=torch.float32) / (2 * length)
    hidden_jitter = _rand((batch, length), generator) * 0.5
    return torch.where(visible, order.expand(batch, length), 1.0 + hidden_jitter)


def random_noise(batch_size: int, grid_size: tuple[int, int], mask_ratio: float,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, int]:
    """Uniform noise (official MAE); with ratio 0 the natural patch order, so nothing is shuffled."""
    length = grid_size[0] * grid_size[1]
    keep = num_kept(length, mask_ratio)
    if keep == length:
        return _natural_order(batch_size, length), keep
    return _rand((batch_size, length), generator), keep


def _cell_coords(grid_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    rows, cols = grid_size
    r = torch.arange(rows).repeat_interleave(cols)
    c = torch.arange(cols).repeat(rows)
    return r, c


def grid_noise(batch_size: int, grid_size: tuple[int, int], mask_ratio: float = 0.75,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, int]:
    """Visible = patches at row % s == 0 and column % s == 0 (the top-left of each s x s cell)."""
    side = cell_size(mask_ratio)
    r, c = _cell_coords(grid_size)
    visible = ((r % side == 0) & (c % side == 0)).expand(batch_size, -1)
    return _noise_from_visible(visible, generator), int(visible[0].sum())


def uniform_noise(batch_size: int, grid_size: tuple[int, int], mask_ratio: float = 0.75,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, int]:
    """UM-MAE: in every s x s cell, one patch chosen uniformly at random is visible."""
    side = cell_size(mask_ratio)
    rows, cols = grid_size
    if rows % side or cols % side:
        raise ConfigError(f"uniform masking needs a patch grid divisible by {side}, got {rows}x{cols}")
    r, c = _cell_coords(grid_size)
    cell_index = (r // side) * (cols // side) + (c // side)
    offset_in_cell = (r % side) * side + (c % side)
    n_cells = (rows // side) * (cols // side)
    chosen = torch.randint(0, side * side, (batch_size, n_cells), generator=generator)
    visible = chosen[:, cell_index] == offset_in_cell
    return _noise_from_visible(visible, generator), n_cells


def block_noise(batch_size: int, grid_size: tuple[int, int], mask_ratio: float = 0.75,
                generator: torch.Generator | None = None, min_block: int = 16,
                min_aspect: float = 0.3, max_rounds: int = 200) -> tuple[torch.Tensor, int]:
    """BEiT Algorithm 1, one candidate block per sample per round, accepted when it adds patches
    without overshooting the target; any shortfall is filled with random patches."""
    rows, cols = grid_size
    length = rows * cols
    keep = num_kept(length, mask_ratio)
    target = length - keep
    masked = torch.zeros(batch_size, length, dtype=torch.bool)
    r, c = _cell_coords(grid_size)
    log_aspect = (math.log(min_aspect), math.log(1 / min_aspect))
    for _ in range(max_rounds):
        count = masked.sum(1)
        todo = count < target
        if not todo.any():
            break
        room = (target - count).clamp(min=1).float()
        hi = torch.maximum(room, torch.full_like(room, float(min_block)))
        size = min_block + _rand((batch_size,), generator) * (hi - min_block)
        aspect = torch.exp(log_aspect[0] + _rand((batch_size,), generator) * (log_aspect[1] - log_aspect[0]))
        h = torch.sqrt(size * aspect).round().clamp(1, rows).long()
        w = torch.sqrt(size / aspect).round().clamp(1, cols).long()
        top = (_rand((batch_size,), generator) * (rows - h + 1).float()).long()
        left = (_rand((batch_size,), generator) * (cols - w + 1).float()).long()
        block = ((r >= top[:, None]) & (r < (top + h)[:, None]) & (c >= left[:, None]) & (c < (left + w)[:, None]))
        grown = masked | block
        new_count = grown.sum(1)
        accept = todo & (new_count > count) & (new_count <= target)
        masked = torch.where(accept[:, None], grown, masked)
    shortfall = target - masked.sum(1)
    if shortfall.any():
        score = torch.where(masked, torch.full((batch_size, length), 2.0), _rand((batch_size, length), generator))
        rank = torch.argsort(torch.argsort(score, dim=1, descending=True), dim=1)
        fill = (~masked) & (rank < (masked.sum(1) + shortfall)[:, None])
        masked = masked | fill
    return _noise_from_visible(~masked, generator), keep


_SAMPLERS = {"random": random_noise, "grid": grid_noise, "block": block_noise, "uniform": uniform_noise}


def sample_noise(kind: str, batch_size: int, grid_size: tuple[int, int], mask_ratio: float,
                 generator: torch.Generator | None = None,
                 device: torch.device | str | None = None) -> tuple[torch.Tensor, int]:
    """Noise (B, L) on ``device`` and the number of visible patches for the named strategy.

    Sampling happens on the CPU with ``generator`` so a seed gives the same masks on every device.
    """
    if kind not in _SAMPLERS:
        raise ConfigError(f"unknown masking {kind!r}; choose one of {', '.join(MASKINGS)}")
    noise, keep = _SAMPLERS[kind](batch_size, grid_size, mask_ratio, generator=generator)
    return noise.to(device) if device is not None else noise, keep


def masking_alias(masking: str, mask: str | None, default: str) -> str:
    """The masking strategy of a call that may still pass it by its former keyword ``mask`` (the attention
    analyses called it so; every API now says ``masking``, which the CLI's ``--mask`` sets). ``default`` is
    the function's default for ``masking``: a ``masking`` other than it and a different ``mask`` disagree."""
    if mask is None:
        return masking
    if masking != default and masking != mask:
        raise ConfigError(f"masking={masking!r} and mask={mask!r} disagree: pass masking only")
    return mask


def sample_mask(kind: str, batch_size: int, grid_size: tuple[int, int], mask_ratio: float,
                generator: torch.Generator | None = None,
                device: torch.device | str | None = None) -> MaskIds:
    """Keep-indices, restore-indices and binary mask (1 = removed) for the named strategy."""
    noise, keep = sample_noise(kind, batch_size, grid_size, mask_ratio, generator, device)
    return ids_from_noise(noise, keep)

__all__ = ["MASKINGS", "MaskIds", "block_noise", "cell_size", "grid_noise", "ids_from_noise", "masking_alias",
    "num_kept", "random_noise", "sample_mask", "sample_noise", "uniform_noise"]
