"""Running a checkpoint at another input resolution than the one it was trained at (``--image-size``).

A ViT's weights do not depend on the number of patches except through its position tables. MAE's
tables are the fixed 2-D sin-cos formula, so for a new grid they are regenerated, exactly as a model
built at that size would hold them. A learned table (timm and other supervised or self-supervised
ViTs) is resampled as timm does (:func:`timm.layers.resample_abs_pos_embed`: the CLS row kept, the
patch rows interpolated bicubically as an image, antialiased when shrinking). Each table's treatment is
recorded in the provenance.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from ..errors import CheckpointError, ConfigError
from ..models import ModelConfig
from ..models.pos_embed import sincos_2d
from ..validation import FLOAT_BYTES, MAX_IMAGE_SIDE, MAX_TOKENS, gib

#: Position tables of :class:`~maelens.models.MaskedAutoencoderViT` and the config field of their width.
POSITION_TABLES = {"pos_embed": "embed_dim", "decoder_pos_embed": "decoder_embed_dim"}
#: Largest |difference| from the sin-cos formula of a table still taken as that formula (float32 storage
#: and the official numpy implementation differ by ~1e-7).
SINCOS_TOLERANCE = 1e-4


def sincos_table(width: int, grid: tuple[int, int]) -> torch.Tensor:
    """(1, 1 + rows*cols, width) fixed MAE table, CLS row first (zeros)."""
    return torch.from_numpy(sincos_2d(width, grid)).unsqueeze(0)


def sincos_difference(table: torch.Tensor, grid: tuple[int, int]) -> float:
    """Largest |table - sin-cos formula| for ``grid`` (inf when the shapes or widths cannot match)."""
    width = table.shape[-1]
    if width % 4 or table.shape[-2] != 1 + grid[0] * grid[1]:
        return float("inf")
    return (table.float().reshape(1, -1, width) - sincos_table(width, grid)).abs().max().item()


def resize_inputs(config: ModelConfig, state: dict[str, torch.Tensor], image_size: int, where: str
                  ) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, str]]:
    """``config`` and ``state`` for square ``image_size`` inputs: ``(config, state, provenance)``.

    Sin-cos tables (or tables not stored) are regenerated for the new grid; learned ones are resampled
    bicubically with the CLS row kept. Raises a CheckpointError when ``image_size`` is not a multiple of
    the patch size.
    """
    patch = config.patch_size
    if image_size % patch:
        raise CheckpointError(f"image_size={image_size} is not a multiple of the patch size {patch} of {where} "
                              f"(e.g. {max(patch, image_size // patch * patch)})")
    old_grid = config.grid_size
    tokens = (image_size // patch) ** 2 + 1
    if tokens > MAX_TOKENS or image_size > MAX_IMAGE_SIDE:
        raise ConfigError(f"image_size={image_size} makes {tokens:,} tokens per image with the patch size {patch} of "
                          f"{where} (trained at {config.img_size}), over the limit of {MAX_TOKENS:,}: one attention "
                          f"map alone would take {gib(tokens * tokens * FLOAT_BYTES)}")
    new_config = replace(config, img_size=image_size)
    new_grid = new_config.grid_size
    if new_grid == old_grid:
        return config, state, {}
    state = dict(state)
    shown = f"{new_grid[0]}x{new_grid[1]}"
    provenance = {"img_size": f"given (--image-size {image_size}; the checkpoint's is {config.img_size})"}
    for key, width_field in POSITION_TABLES.items():
        if key == "decoder_pos_embed" and not config.has_decoder:
            continue
        table = state.get(key)
        if table is None or sincos_difference(table, old_grid) <= SINCOS_TOLERANCE:
            # fixed formula: the table of a model built at the new size, exactly
            state[key] = sincos_table(getattr(config, width_field), new_grid).to(table.dtype if table is not None
                                                                                  else torch.float32)
            provenance[key] = f"2-D sin-cos table regenerated for the {shown} grid (exact)"
        else:
            state[key] = resample_learned(table, new_grid, old_grid)
            provenance[key] = (f"learned table resampled from {old_grid[0]}x{old_grid[1]} to {shown} "
                               "(bicubic, antialiased, CLS row kept, as timm resample_abs_pos_embed)")
    return new_config, state, provenance


def resample_learned(table: torch.Tensor, new_grid: tuple[int, int], old_grid: tuple[int, int]) -> torch.Tensor:
    """(1, 1 + old cells, D) learned table -> (1, 1 + new cells, D), as timm resamples it."""
    from timm.layers import resample_abs_pos_embed

    with torch.no_grad():
        return resample_abs_pos_embed(table.reshape(1, -1, table.shape[-1]).float(), new_size=list(new_grid),
                                      old_size=list(old_grid), num_prefix_tokens=1).to(table.dtype)


__all__ = ["POSITION_TABLES", "resample_learned", "resize_inputs", "sincos_difference", "sincos_table"]
