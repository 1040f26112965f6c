"""The fields every training run shares (pretraining and fine-tuning alike) and their checks.

:class:`RunConfig` is the base of :class:`~maelens.train.config.TrainConfig` and
:class:`~maelens.segmentation.config.SegmentConfig`; :class:`~maelens.train.runloop.RunLoop` reads only these
fields. Imports nothing heavy: a configuration can be built and checked without torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from ..choices import DEFAULT_BATCH_SIZE, DEFAULT_WARMUP_EPOCHS, PRECISIONS, SCHEDULES
from ..errors import ConfigError

_Config = TypeVar("_Config", bound="RunConfig")


@dataclass(frozen=True)
class RunConfig:
    """Data, length, optimisation, numerics and the run folder of a training run.

    ``batch_size`` is per process and micro-batch, so the effective batch is ``batch_size * accum_iter *
    world_size``; ``batch_size=None`` means :data:`~maelens.choices.DEFAULT_BATCH_SIZE` lowered so that one
    step fits in the data (:meth:`batch_size_for`); ``warmup_epochs=None`` means
    :data:`~maelens.choices.DEFAULT_WARMUP_EPOCHS` shortened to ``epochs``. ``lr=None`` means ``blr *
    effective_batch / 256`` (MAE's rule). A value given explicitly is never changed; one that conflicts is a
    ConfigError.

    Attributes:
        data, num_images: the training images (a ``--data`` spec) and an optional cap.
        epochs, batch_size, accum_iter: passes over the data; images per process and micro-batch;
            micro-batches per optimizer step.
        blr, lr, min_lr, weight_decay: base lr, absolute lr, the floor of the decay, weight decay.
        warmup_epochs, schedule: linear warm-up, then ``cosine`` or ``linear`` decay.
        clip_grad: clip the gradient norm (None: no clipping).
        seed: seeds the model, the data order and every random draw of the run (a resumed run continues them).
        precision, compile: ``auto`` / ``fp32`` / ``bf16`` (:mod:`maelens.train.precision`); torch.compile.
        device, num_workers: where the run computes; data-loader processes.
        out, resume, save_every, keep_last: the run folder; ``"auto"`` or a checkpoint to continue from;
            checkpoint every N epochs (and after the last); numbered ``checkpoint-NNNN.pt`` files kept.
        quiet: no progress bars or notes.
    """

    data: str = "bundled"
    num_images: int | None = None
    epochs: int = 10
    batch_size: int | None = None
    accum_iter: int = 1
    blr: float = 1.5e-4
    lr: float | None = None
    min_lr: float = 0.0
    weight_decay: float = 0.05
    warmup_epochs: float | None = None
    schedule: str = "cosine"
    clip_grad: float | None = None
    seed: int = 0
    precision: str = "auto"
    compile: bool = False
    device: str = "auto"
    num_workers: int = 0
    out: str = "runs/run"
    resume: str | None = None
    save_every: int = 1
    keep_last: int = 0
    quiet: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", str(self.out))
        self._check_counts()
        for name, allowed in (("precision", PRECISIONS), ("schedule", SCHEDULES)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.warmup_epochs is not None and not 0 <= self.warmup_epochs <= self.epochs:
            raise ConfigError(f"warmup_epochs must be in [0, epochs={self.epochs}], got {self.warmup_epochs!r}")
        if not _positive(self.blr) or (self.lr is not None and not _positive(self.lr)):
            raise ConfigError("blr and lr must be positive")
        if not (self.min_lr >= 0 and self.weight_decay >= 0):
            raise ConfigError("min_lr and weight_decay must be >= 0")
        if self.clip_grad is not None and not _positive(self.clip_grad):
            raise ConfigError(f"clip_grad must be positive or None, got {self.clip_grad!r}")

    def _check_counts(self) -> None:
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "accum_iter": self.accum_iter,
                    "save_every": self.save_every}
        for name, value in positive.items():
            if name == "batch_size" and value is None:  # the default, fitted to the data by batch_size_for
                continue
            if not _integer(value) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name in ("keep_last", "num_workers"):
            if not _integer(getattr(self, name)) or getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.num_images is not None and (not _integer(self.num_images) or self.num_images < 1):
            raise ConfigError(f"num_images must be a positive integer or None, got {self.num_images!r}")

    # ---- derived values ---------------------------------------------------------------------
    @property
    def out_dir(self) -> Path:
        return Path(self.out)

    @property
    def effective_warmup_epochs(self) -> float:
        """``warmup_epochs``, or the default :data:`~maelens.choices.DEFAULT_WARMUP_EPOCHS` shortened to ``epochs``."""
        if self.warmup_epochs is not None:
            return float(self.warmup_epochs)
        return min(DEFAULT_WARMUP_EPOCHS, float(self.epochs))

    def batch_size_for(self, num_images: int, world_size: int = 1) -> int:
        """Images per process and micro-batch for a data set of ``num_images``: ``batch_size`` as given,
        else :data:`~maelens.choices.DEFAULT_BATCH_SIZE` lowered so that one optimizer step (``accum_iter``
        micro-batches on each of ``world_size`` processes) fits in the data (at least 1)."""
        if self.batch_size is not None:
            return self.batch_size
        return max(1, min(DEFAULT_BATCH_SIZE, num_images // (self.accum_iter * world_size)))

    def effective_batch_size(self, world_size: int = 1, batch_size: int | None = None) -> int:
        """Images per optimizer step over all processes (``batch_size``: the one resolved for the data,
        default ``self.batch_size`` or :data:`~maelens.choices.DEFAULT_BATCH_SIZE`)."""
        return (batch_size or self.batch_size or DEFAULT_BATCH_SIZE) * self.accum_iter * world_size

    def peak_lr(self, world_size: int = 1, batch_size: int | None = None) -> float:
        """Absolute lr after warm-up: ``lr`` if given, else MAE's ``blr * effective_batch / 256``."""
        if self.lr is not None:
            return float(self.lr)
        return self.blr * self.effective_batch_size(world_size, batch_size) / 256

    # ---- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain types only (lists, not tuples), as stored in the checkpoint."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls: type[_Config], data: dict[str, Any]) -> _Config:
        """Build from :meth:`to_dict` output, ignoring unknown keys."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


__all__ = ["RunConfig"]
