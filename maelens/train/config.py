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

from dataclasses import dataclass, field
from typing import Any

from ..choices import (
    CAE,
    DEFAULT_BATCH_SIZE,
    DEFAULT_WARMUP_EPOCHS,
    LOSSES,
    MAE,
    MASKINGS,
    SCHEDULES,
    SIMCLR,
    TRAINING_METHODS,
)
from ..errors import ConfigError
from ..models.cae_config import CAE_MASK_RATIO, CAE_MASKING, CAE_PRESETS
from ..models.presets import LOSS_TARGETS, ModelConfig, preset_recipe
from ..models.simclr_config import SIMCLR_PRESETS, SimCLRConfig
from .runconfig import RunConfig

#: What a run trains (kept under this name for callers of earlier versions; :data:`maelens.choices.TRAINING_METHODS`).
METHODS = TRAINING_METHODS


def default_masking(method: str) -> tuple[str, float]:
    """The masking strategy and ratio a ``method``'s paper pretrains with: block-wise 50% for a CAE (CAE sec.
    4.1, BEiT's masking), random 75% otherwise (MAE sec. 4; SimCLR does not mask)."""
    return (CAE_MASKING, CAE_MASK_RATIO) if method == CAE else ("random", 0.75)


@dataclass(frozen=True)
class TrainConfig(RunConfig):
    """Everything a pretraining run needs: the shared run fields of :class:`~maelens.train.runconfig.RunConfig`
    (data, length, optimisation, numerics, run folder) and what pretraining adds.

    Defaults fit the other settings: ``warmup_epochs=None`` and ``batch_size=None`` are adapted to the run
    (see RunConfig); a value given explicitly is never changed. ``precision``: ``auto`` (bf16 autocast where
    the device computes it natively, else float32; see :mod:`maelens.train.precision`), ``fp32`` or
    ``bf16``; the resolved choice and its reason go to the run's log and summary. The old ``bf16=True`` is
    still accepted by :meth:`from_dict` as ``precision="bf16"``. ``fused_attention=None`` picks timm's
    fused kernel on CUDA and for float32 steps on CPU, the eager path under CPU bf16 autocast (the faster
    of the two in each case: :func:`maelens.train.methods.use_fused_attention`).

    Attributes:
        preset: the architecture (:data:`~maelens.models.presets.PRESETS`, or a SimCLR preset).
        method: ``mae`` or ``simclr`` (what the run trains; :mod:`maelens.train.methods`).
        model_overrides: architecture fields changed from the preset's (e.g. ``{"depth": 2}``).
        norm_pix_loss, loss_target: the MAE's reconstruction target (per-patch normalised pixels; ``pixel``,
            ``ycbcr`` = IPOL's weighted MSE_w, ``ycbcr-plain``); :meth:`with_loss` sets both from a CLI name.
        split: the split of ``data`` trained on.
        decay_tokens, betas: AdamW's; ``decay_tokens`` decays the CLS and mask tokens too (the official
            grouping; False: timm's exemption).
        masking, mask_ratio: the masking strategy and the share of patches removed; None (the default): the
            method's own, random 75% for an MAE (MAE sec. 4) and block-wise 50% for a CAE (CAE sec. 4.1,
            BEiT's masking), so that a library caller gets the paper's recipe of the method it names.
        fused_attention: timm's fused attention kernel (None: where it is the faster, see above).
        recon_images: images of the per-epoch reconstruction figure handed to ``on_epoch_end`` (0: none).
        settings_from: where each recipe setting came from (a record only).
    """

    preset: str = "tiny"
    method: str = MAE
    model_overrides: dict[str, Any] = field(default_factory=dict)
    norm_pix_loss: bool = False
    loss_target: str = "pixel"
    split: str = "train"
    decay_tokens: bool = True
    betas: tuple[float, float] = (0.9, 0.95)
    masking: str | None = None
    mask_ratio: float | None = None
    fused_attention: bool | None = None
    out: str = "runs/mae"
    recon_images: int = 8
    #: where each recipe setting came from ("option", "default" or the preset's recipe; see recipe_options);
    #: a record only, so runs that differ in it alone are the same run
    settings_from: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        object.__setattr__(self, "model_overrides", dict(self.model_overrides))
        object.__setattr__(self, "settings_from", dict(self.settings_from))
        masking, mask_ratio = default_masking(self.method)
        if self.masking is None:
            object.__setattr__(self, "masking", masking)
        if self.mask_ratio is None:
            object.__setattr__(self, "mask_ratio", mask_ratio)
        if self.recon_images < 0:
            raise ConfigError(f"recon_images must be >= 0, got {self.recon_images!r}")
        if self.masking not in MASKINGS:
            raise ConfigError(f"masking must be one of {', '.join(MASKINGS)}, got {self.masking!r}")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ConfigError(f"mask_ratio must be in (0, 1) for pretraining, got {self.mask_ratio!r}")
        if self.loss_target not in LOSS_TARGETS:
            raise ConfigError(f"loss_target must be one of {', '.join(LOSS_TARGETS)}, got {self.loss_target!r}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
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

    # ---- serialisation ----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Build from :meth:`to_dict` output, ignoring unknown keys."""
        data = dict(data)
        if "precision" not in data and "bf16" in data:  # configs written before issue 12
            data["precision"] = "bf16" if data["bf16"] else "fp32"
        return super().from_dict(data)

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

__all__ = ["DEFAULT_BATCH_SIZE", "default_masking", "DEFAULT_WARMUP_EPOCHS", "LOSSES", "MAE", "METHODS", "RECIPE_FIELDS", "SCHEDULES",
    "TrainConfig", "recipe_options"]
