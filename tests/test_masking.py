"""The four masking samplers: visible fraction, determinism and structure."""

import pytest
import torch

from maelens.errors import ConfigError
from maelens.models.masking import ids_from_noise, sample_mask, sample_noise

GRID = (8, 8)


@pytest.mark.parametrize("kind", ["random", "grid", "block", "uniform"])
def test_visible_fraction_is_a_quarter(kind):
    ids = sample_mask(kind, 16, GRID, 0.75, torch.Generator().manual_seed(1))
    assert ids.mask.shape == (16, 64)
    assert (ids.mask.sum(1) == 48).all()
    assert ids.ids_keep.shape == (16, 16)
    # ids_keep lists exactly the visible patches
    visible = torch.zeros(16, 64, dtype=torch.bool).scatter_(1, ids.ids_keep, True)
    assert torch.equal(visible, ids.visible)


@pytest.mark.parametrize("kind", ["random", "grid", "block", "uniform"])
def test_same_seed_same_masks(kind):
    a = sample_mask(kind, 8, GRID, 0.75, torch.Generator().manual_seed(3))
    b = sample_mask(kind, 8, GRID, 0.75, torch.Generator().manual_seed(3))
    c = sample_mask(kind, 8, GRID, 0.75, torch.Generator().manual_seed(4))
    assert torch.equal(a.mask, b.mask) and torch.equal(a.ids_keep, b.ids_keep)
    if kind != "grid":
        assert not torch.equal(a.mask, c.mask)


def _rows_cols(ids):
    r = ids.ids_keep // GRID[1]
    c = ids.ids_keep % GRID[1]
    return r, c


def test_grid_keeps_even_rows_and_columns():
    ids = sample_mask("grid", 4, GRID, 0.75, torch.Generator().manual_seed(0))
    r, c = _rows_cols(ids)
    assert (r % 2 == 0).all() and (c % 2 == 0).all()
    assert torch.equal(ids.mask[0], ids.mask[3])


def test_uniform_keeps_one_patch_per_cell():
    ids = sample_mask("uniform", 32, GRID, 0.75, torch.Generator().manual_seed(0))
    r, c = _rows_cols(ids)
    cells = (r // 2) * 4 + c // 2
    assert (torch.sort(cells, dim=1).values == torch.arange(16)).all()
    # the offset inside the cell varies (not the grid pattern)
    assert ((r % 2) + (c % 2)).sum() > 0


def _masked_neighbour_rate(mask, grid):
    m = mask.view(-1, *grid)
    right = (m[:, :, 1:] * m[:, :, :-1]).sum()
    down = (m[:, 1:, :] * m[:, :-1, :]).sum()
    return float((right + down) / m.sum())


def test_block_masks_are_clumped():
    gen = torch.Generator().manual_seed(0)
    block = sample_mask("block", 64, (14, 14), 0.4, gen).mask
    rand = sample_mask("random", 64, (14, 14), 0.4, gen).mask
    # a patch removed by a block has far more removed neighbours than under random masking
    assert _masked_neighbour_rate(block, (14, 14)) > 1.5 * _masked_neighbour_rate(rand, (14, 14))
    assert (block.sum(1) == 196 - int(196 * 0.6)).all()


def test_ratio_zero_keeps_natural_order():
    noise, keep = sample_noise("random", 2, GRID, 0.0)
    ids = ids_from_noise(noise, keep)
    assert keep == 64 and torch.equal(ids.ids_keep, torch.arange(64).expand(2, 64))


def test_bad_ratios_are_rejected():
    with pytest.raises(ConfigError, match="1 - 1/s"):
        sample_noise("grid", 1, GRID, 0.5)
    with pytest.raises(ConfigError, match="mask ratio"):
        sample_noise("random", 1, GRID, 1.0)
    with pytest.raises(ConfigError, match="unknown masking"):
        sample_noise("checker", 1, GRID, 0.75)
