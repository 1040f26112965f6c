"""Training a Context Autoencoder (CAE, ``shared/papers/004_...``) with the shared trainer: what differs from
an MAE run is the model (:class:`~maelens.models.cae.ContextAutoencoder` from a CAE preset) and its loss,
reconstruction + lambda * alignment, which the model computes itself; the loader's augmentation (MAE's crop
and flip), the optimizer, schedule, accumulation, DDP, precision, NaN stop, checkpoints and resume are the
trainer's (:mod:`maelens.train.loop`).

The paper masks 50% of the patches block-wise (BEiT): a :class:`~maelens.train.config.TrainConfig` with
``method="cae"`` (``maelens train --method cae``, :func:`cae_train_config`) uses that when ``masking`` /
``mask_ratio`` are not given (:func:`~maelens.train.config.default_masking`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from ..models.cae_config import CAE
from .methods import MAEMethod, use_fused_attention

if TYPE_CHECKING:
    from .config import TrainConfig
    from .distributed import DistInfo


class CAEMethod(MAEMethod):
    """CAE: the loss of :meth:`ContextAutoencoder.forward` (reconstruction of the masked patches' targets +
    lambda * alignment of the regressor's predictions with the encoder's stop-gradient representations), on
    images the loader augments as MAE's. No per-epoch reconstruction figure (the decoder predicts the masked
    patches only, and HOG targets cannot be drawn as images)."""

    name = CAE
    loader_augmentation = True
    reconstruction_figure = False

    def model_config(self, config: "TrainConfig") -> Any:
        from ..models.cae_config import get_cae_config

        return get_cae_config(config.preset, **config.model_overrides, norm_pix_loss=config.norm_pix_loss)

    def build_model(self, model_config: Any, config: "TrainConfig", info: "DistInfo") -> nn.Module:
        from ..models.cae import ContextAutoencoder
        from ..models.mae import set_fused_attention

        model = ContextAutoencoder(model_config)
        set_fused_attention(model, use_fused_attention(config, info.device))  # the encoder's and decoder's self-attention blocks
        return model.to(info.device)


def cae_train_config(**kwargs: Any) -> "TrainConfig":
    """A :class:`TrainConfig` for a CAE run: ``method="cae"``, preset ``cae-tiny``, and the paper's block-wise
    masking of 50% unless ``masking`` / ``mask_ratio`` are given."""
    from .config import TrainConfig

    return TrainConfig(**{"method": CAE, "preset": "cae-tiny", **kwargs})


__all__ = ["CAEMethod", "cae_train_config"]
