"""The fine-tuning run's configuration: one frozen dataclass, stored as a plain dict in every checkpoint.

Defaults: AdamW (betas 0.9, 0.999), weight decay 0.05, base lr 1e-3 scaled by effective batch / 256, a
1-epoch linear warm-up then a cosine decay (MAE's fine-tuning recipe, He et al. 2022, Table 9, without
layer decay so that the from-scratch and pretrained arms get the same optimizer); ``layer_decay=0.75``
and ``optimizer="sgd"`` (Segmenter's choice, Strudel et al. 2021, sec. 4.2) are options.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..models.presets import PRESETS
from ..train.config import SCHEDULES
from ..train.precision import PRECISIONS
from .decoders import DECODERS
from .optim import OPTIMIZERS

SCRATCH = "scratch"


@dataclass(frozen=True)
class SegmentConfig:
    """Everything a segmentation fine-tuning needs.

    ``init``: ``"scratch"`` (the ``preset``'s architecture, freshly initialised) or a checkpoint path any
    maelens loader reads (its encoder is copied; ``num_heads`` / ``decoder_num_heads`` as for
    :func:`~maelens.checkpoint.load_checkpoint`). ``data``: a segmentation spec
    (:data:`~maelens.data.segmentation.SEG_SPEC_HELP`); ``num_classes`` for a generic mask folder;
    ``num_images`` / ``eval_images`` cap the train / evaluation splits (seeded subsets).
    ``lr=None`` means ``blr * effective_batch / 256``. ``figure_images``: images in the per-epoch
    prediction figure (0: none).
    """

    init: str = SCRATCH
    preset: str = "tiny"
    num_heads: int | None = None
    decoder_num_heads: int | None = None
    decoder: str = "linear"
    data: str = "mosaic"
    num_classes: int | None = None
    num_images: int | None = None
    eval_images: int | None = None
    epochs: int = 10
    batch_size: int = 32
    blr: float = 1e-3
    lr: float | None = None
    min_lr: float = 0.0
    weight_decay: float = 0.05
    layer_decay: float | None = None
    optimizer: str = "adamw"
    warmup_epochs: float = 1.0
    schedule: str = "cosine"
    clip_grad: float | None = None
    seed: int = 0
    precision: str = "auto"
    device: str = "auto"
    num_workers: int = 0
    out: str = "runs/segment"
    resume: str | None = None
    figure_images: int = 4
    quiet: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", str(self.out))
        object.__setattr__(self, "init", str(self.init))
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name in ("num_images", "eval_images", "num_heads", "decoder_num_heads"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} must be a positive integer or None, got {value!r}")
        if self.num_classes is not None and self.num_classes < 2:
            raise ConfigError(f"num_classes must be at least 2, got {self.num_classes!r}")
        if self.figure_images < 0 or self.num_workers < 0:
            raise ConfigError("figure_images and num_workers must be >= 0")
        choices = {"decoder": DECODERS, "optimizer": OPTIMIZERS, "schedule": SCHEDULES, "precision": PRECISIONS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.from_scratch and self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        if self.warmup_epochs < 0 or self.warmup_epochs > self.epochs:
            raise ConfigError(f"warmup_epochs must be in [0, epochs={self.epochs}], got {self.warmup_epochs!r}")
        if self.blr <= 0 or (self.lr is not None and self.lr <= 0):
            raise ConfigError("blr and lr must be positive")
        if self.min_lr < 0 or self.weight_decay < 0:
            raise ConfigError("min_lr and weight_decay must be >= 0")
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            raise ConfigError(f"layer_decay must be in (0, 1] or None, got {self.layer_decay!r}")
        if self.clip_grad is not None and self.clip_grad <= 0:
            raise ConfigError(f"clip_grad must be positive or None, got {self.clip_grad!r}")

    @property
    def from_scratch(self) -> bool:
        return self.init == SCRATCH

    @property
    def out_dir(self) -> Path:
        return Path(self.out)

    def effective_batch_size(self, world_size: int = 1) -> int:
        return self.batch_size * world_size

    def peak_lr(self, world_size: int = 1) -> float:
        """``lr`` if given, else ``blr * effective_batch / 256``."""
        return float(self.lr) if self.lr is not None else self.blr * self.effective_batch_size(world_size) / 256

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SegmentConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

__all__ = ["SCRATCH", "SegmentConfig"]
