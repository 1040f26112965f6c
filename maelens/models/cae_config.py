"""The Context Autoencoder's configuration (Chen et al., "Context Autoencoder for Self-Supervised Representation
Learning", ``shared/papers/004_...``): a ViT encoder exactly as MAE's (the :class:`ModelConfig` fields, with no
MAE decoder), a latent contextual regressor of cross-attention blocks, a decoder of self-attention blocks over
the masked patches only, and the alignment weight lambda.

The paper's defaults are kept: 4 regressor and 4 decoder blocks (sec. "Implementation": "4-layer outperforms
other choices overall"), regressor and decoder at the encoder's width and head count (the alignment compares
regressor outputs with encoder outputs, so they share a space), lambda = 2 (the paper's loss weight), masking
50% of the patches block-wise as BEiT (98 of 196 patches; :data:`CAE_MASKING`, :data:`CAE_MASK_RATIO`).

Targets: ``pixel`` (the paper's Table 8 RGB variant; ``norm_pix_loss`` standardises each patch as MAE) or
``hog`` (MaskFeat's histograms of oriented gradients, :mod:`maelens.models.hog`). The paper's main targets,
the discrete tokens of a d-VAE or of the DALL-E tokenizer, need a tokenizer trained on ImageNet-1K or on 400M
images; neither ships with maelens nor can be had offline, so ``target="dalle"`` or ``"dvae"`` is refused
with that reason (:data:`UNAVAILABLE_TARGETS`).

No torch here: the command line reads the preset names without importing it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ..choices import CAE  # the ``method`` value of a training run and of a checkpoint's config that holds a CAE
from ..errors import ConfigError
from .presets import PRESETS, ModelConfig, from_table

#: Reconstruction targets a CAE can predict here.
CAE_TARGETS = ("pixel", "hog")
#: The paper's tokenizer targets, and why they are refused.
UNAVAILABLE_TARGETS = {
    "dalle": "the DALL-E tokenizer (a d-VAE trained on 400M images) is not available offline",
    "dvae": "the paper's d-VAE tokenizer (trained on ImageNet-1K) is not available offline",
}
#: The paper's masking: BEiT's block-wise masking of 50% of the patches (98 of 196).
CAE_MASKING = "block"
CAE_MASK_RATIO = 0.5
#: The paper's weight of the alignment loss (loss = reconstruction + lambda * alignment).
DEFAULT_ALIGNMENT_WEIGHT = 2.0


@dataclass(frozen=True)
class CAEConfig(ModelConfig):
    """A CAE: the encoder fields of :class:`ModelConfig` (``decoder_depth`` stays 0: a CAE has no MAE decoder,
    so MAE-decoder analyses refuse it), plus

    Attributes:
        regressor_depth: cross-attention blocks of the latent contextual regressor (paper: 4).
        cae_decoder_depth: self-attention blocks of the decoder over the masked patches (paper: 4; 0 = the
            paper's "no decoder" ablation of Table 5: a linear layer predicts the targets).
        alignment_weight: lambda of loss = reconstruction + lambda * alignment (paper: 2; 0 = no alignment,
            the ablation of Fig. 4 and Table 5).
        target: ``pixel`` or ``hog`` (see :data:`CAE_TARGETS`); ``norm_pix_loss`` standardises pixel patches.
        hog_bins, hog_cell: orientation bins and cell side of the HOG target (``hog_cell=0``: half the patch
            side when the patch is at least 8 pixels, as MaskFeat's 8-pixel cells in 16-pixel patches, else the
            patch side).
        method: always ``cae`` (what the loader dispatches on).
    """

    decoder_depth: int = 0
    regressor_depth: int = 4
    cae_decoder_depth: int = 4
    alignment_weight: float = DEFAULT_ALIGNMENT_WEIGHT
    target: str = "pixel"
    hog_bins: int = 9
    hog_cell: int = 0
    method: str = CAE

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method != CAE:
            raise ConfigError(f"method of a CAEConfig must be {CAE!r}, got {self.method!r}")
        if self.decoder_depth != 0:
            raise ConfigError("decoder_depth must be 0 for a CAE (it has no MAE decoder); its decoder is "
                              "cae_decoder_depth")
        if self.loss_target != "pixel":
            raise ConfigError(f"loss_target is an MAE setting; a CAE's target is target= (one of "
                              f"{', '.join(CAE_TARGETS)}), got loss_target={self.loss_target!r}")
        if self.target in UNAVAILABLE_TARGETS:
            raise ConfigError(f"target={self.target!r}: {UNAVAILABLE_TARGETS[self.target]}; use one of "
                              f"{', '.join(CAE_TARGETS)}")
        if self.target not in CAE_TARGETS:
            raise ConfigError(f"target must be one of {', '.join(CAE_TARGETS)}, got {self.target!r}")
        if self.regressor_depth < 1 or self.cae_decoder_depth < 0:
            raise ConfigError(f"regressor_depth must be >= 1 and cae_decoder_depth >= 0, got "
                              f"{self.regressor_depth} and {self.cae_decoder_depth}")
        if not self.alignment_weight >= 0:
            raise ConfigError(f"alignment_weight must be >= 0, got {self.alignment_weight!r}")
        if self.target == "hog":
            if self.norm_pix_loss:
                raise ConfigError("norm_pix_loss applies to the pixel target; HOG histograms are normalised "
                                  "per patch already")
            if self.hog_bins < 2 or self.hog_cell < 0 or self.patch_size % self.cell_side:
                raise ConfigError(f"hog_bins must be >= 2 and hog_cell must divide patch_size={self.patch_size}, "
                                  f"got hog_bins={self.hog_bins}, hog_cell={self.hog_cell}")

    @property
    def cell_side(self) -> int:
        """The HOG cell side in pixels (``hog_cell``, or its automatic value)."""
        if self.hog_cell:
            return self.hog_cell
        return self.patch_size // 2 if self.patch_size >= 8 and self.patch_size % 2 == 0 else self.patch_size

    @property
    def target_dim(self) -> int:
        """Values predicted per patch: p*p*C pixels, or C x cells x bins HOG values."""
        if self.target == "pixel":
            return self.patch_size ** 2 * self.in_chans
        return self.in_chans * (self.patch_size // self.cell_side) ** 2 * self.hog_bins

    def encoder_config(self) -> ModelConfig:
        """The encoder alone as an MAE :class:`ModelConfig` (no decoder): what a CAE encoder shares with MAE's."""
        known = {f.name for f in fields(ModelConfig)}
        return ModelConfig(**{k: v for k, v in self.to_dict().items() if k in known})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CAEConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _sized_to(encoder: str, **cae: Any) -> CAEConfig:
    """A CAE whose encoder is the MAE preset ``encoder``'s (same ViT, so parameter counts compare)."""
    base = {k: v for k, v in PRESETS[encoder].to_dict().items() if k not in ("name", "decoder_embed_dim",
                                                                             "decoder_depth", "decoder_num_heads")}
    return CAEConfig(name=f"cae-{encoder}", decoder_embed_dim=base["embed_dim"], decoder_num_heads=base["num_heads"],
                     **base, **cae)


#: CAE presets: the encoders of the ``tiny`` and ``ipol64`` MAE presets with the paper's 4 + 4 blocks.
CAE_PRESETS: dict[str, CAEConfig] = {
    "cae-tiny": _sized_to("tiny"),
    "cae-ipol64": _sized_to("ipol64"),
}


def is_cae_config(data: Any) -> bool:
    """Whether a checkpoint's stored ``config`` dict is a CAE's."""
    return isinstance(data, dict) and data.get("method") == CAE


def get_cae_config(preset: str, **overrides: Any) -> CAEConfig:
    """The named CAE preset with ``overrides`` applied (e.g. ``target="hog"``)."""
    return from_table(CAE_PRESETS, preset, overrides, kind="CAE")


__all__ = ["CAE", "CAEConfig", "CAE_MASKING", "CAE_MASK_RATIO", "CAE_PRESETS", "CAE_TARGETS",
           "DEFAULT_ALIGNMENT_WEIGHT", "UNAVAILABLE_TARGETS", "get_cae_config", "is_cae_config"]
