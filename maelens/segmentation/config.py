"""The fine-tuning run's configuration: one frozen dataclass, stored as a plain dict in every checkpoint.

Defaults: AdamW (betas 0.9, 0.999), weight decay 0.05, base lr 1e-3 scaled by effective batch / 256, a
1-epoch linear warm-up then a cosine decay (MAE's fine-tuning recipe, He et al. 2022, Table 9, without
layer decay so that the from-scratch and pretrained arms get the same optimizer); ``layer_decay=0.75``
and ``optimizer="sgd"`` (Segmenter's choice, Strudel et al. 2021, sec. 4.2) are options.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..choices import DECODERS, FINETUNE_OPTIMIZERS, SCRATCH
from ..errors import ConfigError
from ..models.presets import PRESETS
from ..train.runconfig import RunConfig


@dataclass(frozen=True)
class SegmentConfig(RunConfig):
    """Everything a segmentation fine-tuning needs: the shared run fields of
    :class:`~maelens.train.runconfig.RunConfig` (data, length, optimisation, numerics, run folder; with
    ``accum_iter``, ``save_every`` and ``keep_last`` as for pretraining) and what fine-tuning adds.

    ``init``: ``"scratch"`` (the ``preset``'s architecture, freshly initialised) or a checkpoint path any
    maelens loader reads (its encoder is copied; ``num_heads`` / ``decoder_num_heads`` as for
    :func:`~maelens.checkpoint.load_checkpoint`). ``data``: a segmentation spec
    (:data:`~maelens.data.segmentation.SEG_SPEC_HELP`); ``num_classes`` for a generic mask folder;
    ``num_images`` / ``eval_images`` cap the train / evaluation splits (seeded subsets).
    ``figure_images``: images in the per-epoch prediction figure (0: none).
    """

    init: str = SCRATCH
    preset: str = "tiny"
    num_heads: int | None = None
    decoder_num_heads: int | None = None
    decoder: str = "linear"
    data: str = "mosaic"
    num_classes: int | None = None
    eval_images: int | None = None
    batch_size: int | None = 32
    blr: float = 1e-3
    layer_decay: float | None = None
    optimizer: str = "adamw"
    warmup_epochs: float | None = 1.0
    out: str = "runs/segment"
    figure_images: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "init", str(self.init))
        for name in ("eval_images", "num_heads", "decoder_num_heads"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} must be a positive integer or None, got {value!r}")
        if self.num_classes is not None and self.num_classes < 2:
            raise ConfigError(f"num_classes must be at least 2, got {self.num_classes!r}")
        if self.figure_images < 0:
            raise ConfigError(f"figure_images must be >= 0, got {self.figure_images!r}")
        for name, allowed in (("decoder", DECODERS), ("optimizer", FINETUNE_OPTIMIZERS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.init == SCRATCH and self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            raise ConfigError(f"layer_decay must be in (0, 1] or None, got {self.layer_decay!r}")

__all__ = ["SCRATCH", "SegmentConfig"]
