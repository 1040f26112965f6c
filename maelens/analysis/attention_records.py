"""Typed per-layer results of the attention analyses (IPOL sec. 5): what :func:`~maelens.analysis.
attention_dataset.attention_stats` reports for every decoder layer, and the head statistics both it and
:func:`~maelens.analysis.encoder_attention.encoder_attention_stats` report for encoder layers."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


class _Record:
    """Per-layer results as typed records; ``to_dict`` gives the JSON object (keys in field order) and
    ``record["name"]`` reads a field as the plain dicts of earlier versions were read."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__:  # type: ignore[attr-defined]
            raise KeyError(key)
        return getattr(self, key)


@dataclass(frozen=True)
class HeadAttention(_Record):
    """Attention distance and entropy of one layer's heads (MAE / ViT analyses; reported for the encoder):
    head means and per-head lists, pooled over the images."""

    layer: int
    mean_attention_distance: float
    entropy: float
    head_mean_attention_distance: list[float]
    head_entropy: list[float]


@dataclass(frozen=True)
class DecoderLayerAttention(_Record):
    """IPOL sec. 5's statistics of one decoder layer over the images: consistency (with its Wilson 95%
    interval and count), soft consistency, locality (local / influenced patches, on ``locality_images``),
    the black-patch proportion of the non-important patches (``black_fraction``, what Fig. 10 draws) and of
    all patches (``black_fraction_of_all``), each ratio with its 95% interval, then the heads' attention
    distance and entropy (as :class:`HeadAttention`)."""

    layer: int
    images: int
    consistency: float
    consistency_ci: list[float]
    consistent_images: int
    soft_consistency: float
    soft_consistency_ci: list[float]
    locality: float
    locality_ci: list[float]
    local_patches: int
    influenced_patches: int
    black_fraction: float
    black_fraction_ci: list[float]
    black_patches: int
    non_important_patches: int
    black_fraction_of_all: float
    black_fraction_of_all_ci: list[float]
    locality_images: int
    mean_attention_distance: float
    entropy: float
    head_mean_attention_distance: list[float]
    head_entropy: list[float]


__all__ = ["DecoderLayerAttention", "HeadAttention"]
