"""The SimCLR baseline's configuration (IPOL sec. 6, Table 3, Fig. 14): backbone, projection head, NT-Xent
temperature and augmentation strengths, as one frozen dataclass stored in every SimCLR checkpoint.

The IPOL paper calls its SimCLR model "based on Resnet-50" but gives its size as **11,504,832** parameters.
That is exactly torchvision's ResNet-18 without its classifier (11,176,512) plus SimCLR's projection head
512 -> 512 -> 128 with biases and a ReLU between (262,656 + 65,664 = 328,320); a ResNet-50 backbone alone
has 23,508,032. So the ``simclr-r18`` preset is a ResNet-18, the model whose count the paper reports.

The paper says nothing of the stem at 64x64 input: the preset keeps torchvision's ImageNet stem (7x7
stride-2 convolution and 3x3 max-pool), the architecture that gives the paper's count; ``stem="cifar"``
(a 3x3 stride-1 convolution and no max-pool, SimCLR's CIFAR-10 variant, Chen et al. 2020, appendix B.9)
is the alternative for small images (11,497,152 parameters).

The remaining defaults are SimCLR's own (Chen et al. 2020), for the low-resolution setting where the
paper does not give them: temperature 0.5 and colour-distortion strength 0.5 (their CIFAR-10 values,
appendix B.9), random resized crop of area (0.08, 1) and aspect ratio (3/4, 4/3), colour jitter with
probability 0.8, grayscale with probability 0.2, and Gaussian blur with probability 0.5 (sigma in
[0.1, 2], kernel 10% of the side; the IPOL paper lists "random gaussian blurs" among its augmentations).
No torch here: the command line reads the preset names without importing it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..choices import SIMCLR  # the ``method`` value of a run and of a checkpoint's config holding a SimCLR
from ..choices import SIMCLR_AUGMENTATION as _AUGMENT
from ..errors import ConfigError
from ..validation import MAX_IMAGE_SIDE, MAX_WIDTH, Field, check_fields
from .presets import IMAGENET_MEAN, IMAGENET_STD, from_table

#: Stems of the ResNet: torchvision's ImageNet stem, or SimCLR's CIFAR variant (3x3 conv, no max-pool).
STEMS = ("imagenet", "cifar")
#: Backbones (torchvision architectures, never pretrained weights) and the width of their pooled feature.
BACKBONES = {"resnet18": 512, "resnet50": 2048}


_PROBABILITY = Field("float", low=0, high=1)
#: One rule per field of :class:`SimCLRConfig` (a stored SimCLR checkpoint's config is checked by it).
SIMCLR_CONFIG_FIELDS = {
    "name": Field("str"), "img_size": Field("int", low=1, high=MAX_IMAGE_SIDE), "backbone": Field("str"),
    "stem": Field("str"), "proj_hidden_dim": Field("int", low=1, high=MAX_WIDTH),
    "proj_dim": Field("int", low=1, high=MAX_WIDTH), "temperature": Field("float", above=0),
    "crop_scale": Field("floats", length=2), "crop_ratio": Field("floats", length=2),
    "jitter_strength": Field("float", low=0), "jitter_prob": _PROBABILITY, "gray_prob": _PROBABILITY,
    "blur_prob": _PROBABILITY, "norm_mean": Field("floats", length=3), "norm_std": Field("floats", length=3, above=0),
}


@dataclass(frozen=True)
class SimCLRConfig:
    """Architecture, loss and augmentations of a :class:`~maelens.models.simclr.SimCLR` model.

    ``img_size``: the square input side the augmentations produce and the data is loaded at;
    ``backbone``/``stem``: the ResNet; ``proj_hidden_dim``/``proj_dim``: the projection head
    (feature -> hidden -> ReLU -> proj_dim, biases on); ``temperature``: tau of NT-Xent;
    ``crop_scale``/``crop_ratio``: random resized crop area fraction and aspect-ratio range;
    ``jitter_strength``: SimCLR's colour distortion strength s (brightness, contrast, saturation 0.8 s,
    hue 0.2 s); ``jitter_prob``/``gray_prob``/``blur_prob``: how often each is applied (0 disables).
    """

    name: str = "custom-simclr"
    img_size: int = 64
    backbone: str = "resnet18"
    stem: str = "imagenet"
    proj_hidden_dim: int = 512
    proj_dim: int = 128
    temperature: float = 0.5
    crop_scale: tuple[float, float] = _AUGMENT["crop_scale"]
    crop_ratio: tuple[float, float] = _AUGMENT["crop_ratio"]
    jitter_strength: float = _AUGMENT["jitter_strength"]
    jitter_prob: float = _AUGMENT["jitter_prob"]
    gray_prob: float = _AUGMENT["gray_prob"]
    blur_prob: float = _AUGMENT["blur_prob"]
    norm_mean: tuple[float, float, float] = field(default=IMAGENET_MEAN)
    norm_std: tuple[float, float, float] = field(default=IMAGENET_STD)

    def __post_init__(self) -> None:
        # types, finiteness and ranges first, one rule per field (issue 29); the relations between fields below
        check_fields({f.name: getattr(self, f.name) for f in fields(self)}, SIMCLR_CONFIG_FIELDS, "")
        for key in ("crop_scale", "crop_ratio", "norm_mean", "norm_std"):
            object.__setattr__(self, key, tuple(float(v) for v in getattr(self, key)))
        if self.backbone not in BACKBONES:
            raise ConfigError(f"backbone must be one of {', '.join(BACKBONES)}, got {self.backbone!r}")
        if self.stem not in STEMS:
            raise ConfigError(f"stem must be one of {', '.join(STEMS)}, got {self.stem!r}")
        for key in ("img_size", "proj_hidden_dim", "proj_dim"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{key} must be a positive integer, got {value!r}")
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature!r}")
        low, high = self.crop_scale
        if len(self.crop_scale) != 2 or not 0 < low <= high <= 1:
            raise ConfigError(f"crop_scale must be (low, high) with 0 < low <= high <= 1, got {self.crop_scale!r}")
        if len(self.crop_ratio) != 2 or not 0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ConfigError(f"crop_ratio must be (low, high) with 0 < low <= high, got {self.crop_ratio!r}")
        if self.jitter_strength < 0:
            raise ConfigError(f"jitter_strength must be >= 0, got {self.jitter_strength!r}")
        for key in ("jitter_prob", "gray_prob", "blur_prob"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"{key} must be in [0, 1], got {getattr(self, key)!r}")

    @property
    def method(self) -> str:
        """The training method this config belongs to (``simclr``)."""
        return SIMCLR

    @property
    def feature_dim(self) -> int:
        """Width of the backbone's pooled feature (the representation SimCLR evaluates)."""
        return BACKBONES[self.backbone]

    @property
    def has_decoder(self) -> bool:
        """False: a SimCLR model has no decoder (answers the question MAE code paths ask)."""
        return False

    def to_dict(self) -> dict[str, Any]:
        """Plain types (lists, not tuples) with ``method: simclr``, as stored in checkpoints."""
        out = asdict(self)
        for key in ("crop_scale", "crop_ratio", "norm_mean", "norm_std"):
            out[key] = list(out[key])
        out["method"] = SIMCLR
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SimCLRConfig":
        """Build from :meth:`to_dict` output, ignoring unknown keys."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def is_simclr_config(data: Any) -> bool:
    """Whether a stored config dict describes a SimCLR model."""
    return isinstance(data, dict) and data.get("method") == SIMCLR


SIMCLR_PRESETS: dict[str, SimCLRConfig] = {
    # IPOL sec. 6: 64x64 images, ResNet-18 + 512-512-128 head = 11,504,832 parameters (see the module doc).
    "simclr-r18": SimCLRConfig(name="simclr-r18", img_size=64),
}


def get_simclr_config(preset: str, **overrides: Any) -> SimCLRConfig:
    """The named SimCLR preset with ``overrides`` applied (e.g. ``stem="cifar"``, ``img_size=32``)."""
    return from_table(SIMCLR_PRESETS, preset, overrides, "SimCLR")


__all__ = ["BACKBONES", "SIMCLR", "SIMCLR_PRESETS", "STEMS", "SimCLRConfig", "get_simclr_config",
           "is_simclr_config"]
