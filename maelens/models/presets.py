"""Named model configurations: the IPOL paper's model, the KTH report's, a tiny test model, and
the official MAE releases (ViT-B/16, L/16, H/14 with the 8 x 512 decoder); a preset published with
its pretraining recipe carries it in :data:`RECIPES`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ..data.normalization import IMAGENET_MEAN, IMAGENET_STD
from ..errors import ConfigError
from ..validation import check_model_config

#: Reconstruction targets: ``pixel`` (the model's normalised RGB inputs), ``ycbcr`` (the IPOL paper's
#: weighted MSE_w on Y, Cb, Cr; the name checkpoints have stored since it was the only YCbCr target) and
#: ``ycbcr-plain`` (plain MSE on the same three channels, the paper's unweighted YCbCr run).
LOSS_TARGETS = ("pixel", "ycbcr", "ycbcr-plain")
YCBCR_TARGETS = ("ycbcr", "ycbcr-plain")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and loss of a :class:`MaskedAutoencoderViT`; ``decoder_depth=0`` means encoder only."""

    name: str = "custom"
    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    decoder_embed_dim: int = 512
    decoder_depth: int = 8
    decoder_num_heads: int = 16
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    layer_norm_eps: float = 1e-6
    norm_pix_loss: bool = False
    loss_target: str = "pixel"
    norm_mean: tuple[float, float, float] = field(default=IMAGENET_MEAN)
    norm_std: tuple[float, float, float] = field(default=IMAGENET_STD)

    def __post_init__(self) -> None:
        # one rule for every origin (a preset, options, any checkpoint format): types, ranges, divisibility,
        # a size this machine can hold, before a tensor is allocated (issue 29)
        check_model_config({f.name: getattr(self, f.name) for f in fields(self)})
        if self.loss_target not in LOSS_TARGETS:
            raise ConfigError(f"loss_target must be one of {', '.join(LOSS_TARGETS)}, got {self.loss_target!r}")
        object.__setattr__(self, "norm_mean", tuple(float(v) for v in self.norm_mean))
        object.__setattr__(self, "norm_std", tuple(float(v) for v in self.norm_std))

    @property
    def grid_size(self) -> tuple[int, int]:
        """Patch grid (rows, columns)."""
        n = self.img_size // self.patch_size
        return (n, n)

    @property
    def num_patches(self) -> int:
        rows, cols = self.grid_size
        return rows * cols

    @property
    def has_decoder(self) -> bool:
        return self.decoder_depth > 0

    def to_dict(self) -> dict[str, Any]:
        """Plain-types dict (lists, not tuples) suitable for JSON and ``weights_only`` checkpoints."""
        out = asdict(self)
        out["norm_mean"] = list(self.norm_mean)
        out["norm_std"] = list(self.norm_std)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Build from a dict, ignoring unknown keys (so newer files still load)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


PRESETS: dict[str, ModelConfig] = {
    # Sarbout & Colom (IPOL), sec. 4: 64x64 input, patch 8, encoder 10 x 12 heads x 240,
    # decoder 6 x 16 heads x 160; 8,915,872 trainable parameters.
    "ipol64": ModelConfig(
        name="ipol64", img_size=64, patch_size=8, embed_dim=240, depth=10, num_heads=12,
        decoder_embed_dim=160, decoder_depth=6, decoder_num_heads=16, mlp_ratio=4.0,
    ),
    # KTH DD2412 report, Table 1 (32x32 CIFAR-10; patch 4 gives the 8x8 grid the report shows).
    "kth-small": ModelConfig(
        name="kth-small", img_size=32, patch_size=4, embed_dim=128, depth=3, num_heads=4,
        decoder_embed_dim=64, decoder_depth=1, decoder_num_heads=4, mlp_ratio=2.0,
    ),
    "kth-medium": ModelConfig(
        name="kth-medium", img_size=32, patch_size=4, embed_dim=256, depth=4, num_heads=4,
        decoder_embed_dim=128, decoder_depth=2, decoder_num_heads=4, mlp_ratio=2.0,
    ),
    # For tests and the CPU demo: 32x32, patch 4 (the same 8x8 grid as ipol64), a few narrow blocks;
    # four decoder layers so the through-the-layers curves (IPOL Fig. 10) have a shape.
    "tiny": ModelConfig(
        name="tiny", img_size=32, patch_size=4, embed_dim=64, depth=3, num_heads=4,
        decoder_embed_dim=48, decoder_depth=4, decoder_num_heads=4, mlp_ratio=2.0,
    ),
    # facebookresearch/mae releases (mae_vit_*_patch*_dec512d8b).
    "mae-base": ModelConfig(
        name="mae-base", img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12,
        decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16, mlp_ratio=4.0,
    ),
    "mae-large": ModelConfig(
        name="mae-large", img_size=224, patch_size=16, embed_dim=1024, depth=24, num_heads=16,
        decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16, mlp_ratio=4.0,
    ),
    "mae-huge": ModelConfig(
        name="mae-huge", img_size=224, patch_size=14, embed_dim=1280, depth=32, num_heads=16,
        decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16, mlp_ratio=4.0,
    ),
}


@dataclass(frozen=True)
class TrainingRecipe:
    """The pretraining settings a preset was published with (``source`` says where). ``maelens train
    --preset NAME`` takes each of them that is not given as an option (see
    :func:`maelens.train.config.recipe_options`); experiments and library callers set theirs explicitly.
    ``warmup_epochs`` is shortened to ``epochs`` when a run is shorter."""

    epochs: int
    blr: float
    warmup_epochs: float
    schedule: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


RECIPES: dict[str, TrainingRecipe] = {
    # IPOL sec. 4: "We train for 100 epochs, with the ADAM optimizer, weight decay, linear scheduler. We
    # start training with 2 warmup epochs and initial learning rate of 1.5e-4" (read as MAE's base lr).
    "ipol64": TrainingRecipe(epochs=100, blr=1.5e-4, warmup_epochs=2.0, schedule="linear",
                             source="IPOL sec. 4 (Sarbout & Colom)"),
}


def preset_recipe(preset: str) -> TrainingRecipe | None:
    """The training recipe published with ``preset``, or None when it has none."""
    return RECIPES.get(preset)


def get_config(preset: str, **overrides: Any) -> ModelConfig:
    """The named preset with ``overrides`` applied (e.g. ``norm_pix_loss=True``)."""
    return from_table(PRESETS, preset, overrides)


def from_table(table: dict[str, Any], preset: str, overrides: dict[str, Any], kind: str = "") -> Any:
    """The dataclass ``table[preset]`` with ``overrides`` applied; a ConfigError names an unknown preset or
    option (``kind``: a word before "preset" / "model option" in the messages, e.g. ``SimCLR``)."""
    what = f"{kind} " if kind else ""
    if preset not in table:
        raise ConfigError(f"unknown {what}preset {preset!r}; choose one of {', '.join(table)}")
    known = {f.name for f in fields(table[preset])}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown {what}model option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return replace(table[preset], **overrides)

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "LOSS_TARGETS", "ModelConfig", "PRESETS", "RECIPES", "TrainingRecipe",
    "YCBCR_TARGETS", "from_table", "get_config", "preset_recipe"]
