"""The training run's configuration: one frozen dataclass, stored as a plain dict in every checkpoint.

Defaults follow the official MAE pretraining recipe (facebookresearch/mae ``main_pretrain.py``: AdamW
betas (0.9, 0.95), weight decay 0.05 on every matrix and on the CLS / mask tokens, base lr 1.5e-4
scaled by effective batch / 256, per-iteration warm-up then half-cosine) and the IPOL paper's sec. 4
(base lr 1.5e-4, 2 warm-up epochs; the paper used a linear decay, ``schedule="linear"``). Where maelens
differs on purpose: ``warmup_epochs`` defaults to 2 (the official 40 is for 800-1600 epochs).
``decay_tokens=False`` exempts the tokens from weight decay as timm's ViT does.

``method`` chooses what is trained: ``mae`` (the default, and what a stored config without the field
was), ``simclr`` (the contrastive baseline of IPOL sec. 6 with a SimCLR preset, :mod:`.methods`) or ``cae``
(the Context Autoencoder with a CAE preset, :mod:`.cae_method`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..models.cae_config import CAE, CAE_PRESETS
from ..models.masking import MASKINGS
from ..models.presets import LOSS_TARGETS, ModelConfig, preset_recipe
from ..models.simclr_config import SIMCLR, SIMCLR_PRESETS, SimCLRConfig
from .precision import PRECISIONS

MAE = "mae"
#: What a run trains: an MAE, or the SimCLR baseline (see :mod:`maelens.train.methods`). Written as a
#: literal because the CLI reads it from this source without importing torch (maelens.cli.names).
METHODS = ("mae", "simclr", "cae")
assert METHODS == (MAE, SIMCLR, CAE)

SCHEDULES = ("cosine", "linear")
#: The CLI's loss names: MAE's pixel and per-patch normalised pixel targets, the paper's weighted YCbCr MSE_w
#: (``ycbcr``) and its unweighted YCbCr run (``ycbcr-plain``; IPOL sec. 6).
LOSSES = ("pixel", "norm-pix", "ycbcr", "ycbcr-plain")
#: Warm-up epochs when ``warmup_epochs`` is None (IPOL sec. 4), shortened to ``epochs`` when the run is shorter.
DEFAULT_WARMUP_EPOCHS = 2.0
#: Images per process and micro-batch when ``batch_size`` is None (MAE), lowered when the data set is smaller.
DEFAULT_BATCH_SIZE = 64


@dataclass(frozen=True)
class TrainConfig:
    """Everything a pretraining run needs; ``lr=None`` means ``blr * effective_batch / 256``.

    ``epochs``, ``warmup_epochs`` count passes over the data; ``batch_size`` is per process, so the
    effective batch is ``batch_size * accum_iter * world_size``. Defaults fit the other settings: the
    ``warmup_epochs=None`` default is :data:`DEFAULT_WARMUP_EPOCHS` shortened to ``epochs``
    (:attr:`effective_warmup_epochs`), the ``batch_size=None`` default is :data:`DEFAULT_BATCH_SIZE`
    lowered so that a step fits in the data (:meth:`batch_size_for`); a value given explicitly is never
    changed, and one that conflicts is a ConfigError. ``precision``: ``auto`` (bf16 autocast
    where the device computes it natively, else float32; see :mod:`maelens.train.precision`), ``fp32`` or
    ``bf16``; the resolved choice and its reason go to the run's log and summary. The old ``bf16=True``
    is still accepted by :meth:`from_dict` as ``precision="bf16"``. ``fused_attention=None`` picks timm's
    fused kernel on CUDA and the eager path on CPU (faster there). ``keep_last`` > 0 also keeps that
    many numbered ``checkpoint-NNNN.pt`` files beside ``checkpoint.pt``.

    Attributes:
        preset: the architecture (:data:`~maelens.models.presets.PRESETS`, or a SimCLR preset).
        method: ``mae`` or ``simclr`` (what the run trains; :mod:`maelens.train.methods`).
        model_overrides: architecture fields changed from the preset's (e.g. ``{"depth": 2}``).
        norm_pix_loss, loss_target: the MAE's reconstruction target (per-patch normalised pixels; ``pixel``,
            ``ycbcr`` = IPOL's weighted MSE_w, ``ycbcr-plain``); :meth:`with_loss` sets both from a CLI name.
        data, split, num_images: the training images (a ``--data`` spec, its split, an optional cap).
        epochs, batch_size, accum_iter: passes over the data; images per process and micro-batch;
            micro-batches per optimizer step.
        blr, lr, min_lr: base lr (scaled by the effective batch / 256, MAE's rule), or an absolute ``lr``;
            the floor of the decay.
        weight_decay, decay_tokens, betas: AdamW's; ``decay_tokens`` decays the CLS and mask tokens too
            (the official grouping; False: timm's exemption).
        warmup_epochs, schedule: linear warm-up, then ``cosine`` or ``linear`` decay (IPOL: linear, 2 epochs).
        clip_grad: clip the gradient norm (None: no clipping).
        masking, mask_ratio: the MAE's masking strategy and the share of patches removed.
        seed: seeds the model, the data order, the masks and the augmentations (a resumed run continues
            the same streams).
        precision, compile, fused_attention: numerics and kernels (see above).
        device, num_workers: where the run computes; data-loader processes.
        out, resume, save_every, keep_last: the run folder; ``"auto"`` or a checkpoint to continue from;
            checkpoint every N epochs; numbered checkpoints kept.
        recon_images: images of the per-epoch reconstruction figure handed to ``on_epoch_end`` (0: none).
        quiet: no progress bars or notes.
        settings_from: where each recipe setting came from (a record only).
    """

    preset: str = "tiny"
    method: str = MAE
    model_overrides: dict[str, Any] = field(default_factory=dict)
    norm_pix_loss: bool = False
    loss_target: str = "pixel"
    data: str = "bundled"
    split: str = "train"
    num_images: int | None = None
    epochs: int = 10
    batch_size: int | None = None
    accum_iter: int = 1
    blr: float = 1.5e-4
    lr: float | None = None
    min_lr: float = 0.0
    weight_decay: float = 0.05
    decay_tokens: bool = True
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_epochs: float | None = None
    schedule: str = "cosine"
    clip_grad: float | None = None
    masking: str = "random"
    mask_ratio: float = 0.75
    seed: int = 0
    precision: str = "auto"
    compile: bool = False
    fused_attention: bool | None = None
    device: str = "auto"
    num_workers: int = 0
    out: str = "runs/mae"
    resume: str | None = None
    save_every: int = 1
    keep_last: int = 0
    recon_images: int = 8
    quiet: bool = False
    #: where each recipe setting came from ("option", "default" or the preset's recipe; see recipe_options);
    #: a record only, so runs that differ in it alone are the same run
    settings_from: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        object.__setattr__(self, "out", str(self.out))
        object.__setattr__(self, "model_overrides", dict(self.model_overrides))
        object.__setattr__(self, "settings_from", dict(self.settings_from))
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "accum_iter": self.accum_iter,
                    "save_every": self.save_every}
        for name, value in positive.items():
            if name == "batch_size" and value is None:  # the default, fitted to the data by batch_size_for
                continue
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name in ("keep_last", "recon_images", "num_workers"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.num_images is not None and self.num_images < 1:
            raise ConfigError(f"num_images must be a positive integer or None, got {self.num_images!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.masking not in MASKINGS:
            raise ConfigError(f"masking must be one of {', '.join(MASKINGS)}, got {self.masking!r}")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ConfigError(f"mask_ratio must be in (0, 1) for pretraining, got {self.mask_ratio!r}")
        if self.loss_target not in LOSS_TARGETS:
            raise ConfigError(f"loss_target must be one of {', '.join(LOSS_TARGETS)}, got {self.loss_target!r}")
        if self.warmup_epochs is not None and not 0 <= self.warmup_epochs <= self.epochs:
            raise ConfigError(f"warmup_epochs must be in [0, epochs={self.epochs}], got {self.warmup_epochs!r}")
        if self.blr <= 0 or (self.lr is not None and self.lr <= 0):
            raise ConfigError("blr and lr must be positive")
        if self.min_lr < 0 or self.weight_decay < 0:
            raise ConfigError("min_lr and weight_decay must be >= 0")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        if self.clip_grad is not None and self.clip_grad <= 0:
            raise ConfigError(f"clip_grad must be positive or None, got {self.clip_grad!r}")
        for key in ("norm_pix_loss", "loss_target"):
            if key in self.model_overrides:
                raise ConfigError(f"set {key} as its own TrainConfig field, not in model_overrides")
        self._check_method()

    def _check_method(self) -> None:
        """The preset must be a model of ``method``, and the MAE's loss options stay at their defaults for SimCLR."""
        if self.method not in METHODS:
            raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.method == MAE and self.preset in SIMCLR_PRESETS:
            raise ConfigError(f"preset {self.preset!r} is a SimCLR model: set method=simclr")
        if (self.method == CAE) != (self.preset in CAE_PRESETS):
            raise ConfigError(f"method 'cae' trains a CAE preset ({', '.join(CAE_PRESETS)}) and only it does; got "
                              f"method={self.method!r} with preset {self.preset!r}")
        if self.method == CAE and self.loss_target != "pixel":
            raise ConfigError("loss_target is an MAE setting; a CAE's target is the model option target (pixel or hog)")
        if self.method == SIMCLR:
            if self.preset not in SIMCLR_PRESETS:
                raise ConfigError(f"method 'simclr' trains a SimCLR preset ({', '.join(SIMCLR_PRESETS)}), "
                                  f"got preset {self.preset!r}")
            if self.norm_pix_loss or self.loss_target != "pixel":
                raise ConfigError("norm_pix_loss and loss_target are MAE reconstruction settings; SimCLR's "
                                  "loss is NT-Xent (its temperature is a model option)")

    # ---- derived values ---------------------------------------------------------------------
    def model_config(self) -> ModelConfig | SimCLRConfig:
        """The preset with the overrides and loss settings applied (a SimCLRConfig for ``method="simclr"``)."""
        from .methods import get_method

        return get_method(self.method).model_config(self)

    @property
    def image_size(self) -> int:
        return self.model_config().img_size

    @property
    def out_dir(self) -> Path:
        return Path(self.out)

    @property
    def effective_warmup_epochs(self) -> float:
        """``warmup_epochs``, or the default :data:`DEFAULT_WARMUP_EPOCHS` shortened to ``epochs``."""
        if self.warmup_epochs is not None:
            return float(self.warmup_epochs)
        return min(DEFAULT_WARMUP_EPOCHS, float(self.epochs))

    def batch_size_for(self, num_images: int, world_size: int = 1) -> int:
        """Images per process and micro-batch for a data set of ``num_images``: ``batch_size`` as given,
        else :data:`DEFAULT_BATCH_SIZE` lowered so that one optimizer step (``accum_iter`` micro-batches
        on each of ``world_size`` processes) fits in the data (at least 1)."""
        if self.batch_size is not None:
            return self.batch_size
        return max(1, min(DEFAULT_BATCH_SIZE, num_images // (self.accum_iter * world_size)))

    def effective_batch_size(self, world_size: int = 1, batch_size: int | None = None) -> int:
        """Images per optimizer step over all processes (``batch_size``: the one resolved for the data,
        default ``self.batch_size`` or :data:`DEFAULT_BATCH_SIZE`)."""
        return (batch_size or self.batch_size or DEFAULT_BATCH_SIZE) * self.accum_iter * world_size

    def peak_lr(self, world_size: int = 1, batch_size: int | None = None) -> float:
        """Absolute lr after warm-up: ``lr`` if given, else MAE's ``blr * effective_batch / 256``."""
        if self.lr is not None:
            return float(self.lr)
        return self.blr * self.effective_batch_size(world_size, batch_size) / 256

    # ---- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain types only (lists, not tuples), as stored in the checkpoint's ``train_config``."""
        out = asdict(self)
        out["betas"] = list(self.betas)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Build from :meth:`to_dict` output, ignoring unknown keys."""
        known = {f.name for f in fields(cls)}
        data = dict(data)
        if "precision" not in data and "bf16" in data:  # configs written before issue 12
            data["precision"] = "bf16" if data["bf16"] else "fp32"
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def with_loss(cls, loss: str, **kwargs: Any) -> "TrainConfig":
        """Build with the CLI's loss name: ``pixel``, ``norm-pix`` (MAE's target), ``ycbcr`` (IPOL sec. 6's
        weighted YCbCr MSE_w) or ``ycbcr-plain`` (the same channels, unweighted)."""
        if loss not in LOSSES:
            raise ConfigError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        target = loss if loss in ("ycbcr", "ycbcr-plain") else "pixel"
        return cls(norm_pix_loss=loss == "norm-pix", loss_target=target, **kwargs)


#: The TrainConfig fields a preset's :class:`~maelens.models.presets.TrainingRecipe` sets.
RECIPE_FIELDS = ("epochs", "blr", "warmup_epochs", "schedule")


def recipe_options(preset: str, given: dict[str, Any]) -> dict[str, Any]:
    """TrainConfig keyword arguments: ``given`` (the options the user set; a recipe field left out or None
    counts as not given) completed with ``preset``'s training recipe, plus ``settings_from`` saying for
    each recipe field whether it came from an ``option``, the preset's recipe or TrainConfig's
    ``default`` (a preset without a recipe). The recipe's warm-up is shortened to ``epochs`` when the
    run is shorter. This is what ``maelens train --preset ipol64`` without options runs: the paper's
    100 epochs, linear schedule, 2 warm-up epochs and base lr 1.5e-4."""
    recipe = preset_recipe(preset)
    out = {k: v for k, v in given.items() if not (k in RECIPE_FIELDS and v is None)}
    origin = {name: "option" for name in RECIPE_FIELDS if name in out}
    for name in RECIPE_FIELDS:
        if name in out:
            continue
        if recipe is None:
            origin[name] = "default"
            continue
        value = getattr(recipe, name)
        if name == "warmup_epochs":
            value = min(value, float(out.get("epochs", recipe.epochs)))
        out[name] = value
        origin[name] = f"preset {preset} recipe ({recipe.source})"
    return {**out, "settings_from": origin}

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_WARMUP_EPOCHS", "LOSSES", "MAE", "METHODS", "RECIPE_FIELDS", "SCHEDULES",
    "TrainConfig", "recipe_options"]
