"""Pretraining methods: what differs between an MAE run and a SimCLR run, and nothing else.

A :class:`TrainingMethod` says which model a run trains (:meth:`~TrainingMethod.model_config`,
:meth:`~TrainingMethod.build_model`), how one batch of loader images becomes the model's input
(:meth:`~TrainingMethod.inputs`, outside autocast and without gradients) and how that input becomes a loss
(:meth:`~TrainingMethod.loss`), whether the loader applies MAE's pretraining augmentation, whether a per-epoch
reconstruction figure exists, and the smallest global batch its loss is defined for. Everything else
(optimizer, schedule, accumulation, DDP, logs, NaN stop, checkpoints, resume) is the one run loop of
:mod:`maelens.train.runloop`, through :class:`maelens.train.loop.PretrainTask`.

A new method is a subclass here, one entry in :data:`METHOD_REGISTRY` and its name in
:data:`maelens.choices.TRAINING_METHODS`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..choices import CAE, MAE, SIMCLR, TRAINING_METHODS
from ..errors import ConfigError
from ..models.cae_config import CAE_PRESETS
from ..models.simclr_config import SIMCLR_PRESETS

if TYPE_CHECKING:
    from .config import TrainConfig
    from .distributed import DistInfo


def use_fused_attention(config: "TrainConfig", device: torch.device) -> bool:
    """timm's fused attention kernel (``scaled_dot_product_attention``) or the eager ``softmax(q k^T) v`` for
    a training run: ``config.fused_attention`` when given; else fused on CUDA, and on CPU fused when the step
    runs in float32 and eager under bfloat16 autocast. Measured on a 2-core Xeon (1 thread, forward + backward
    + AdamW, issue 23; ``benchmarks/attention_kernel.py``): in float32 fused is 1.15x (``tiny``) and 1.06x
    (``ipol64``) faster than eager; under CPU bf16 autocast it is 2.8x and 3.3x slower (torch's CPU
    flash-attention kernel has no fast bf16 path). The two give the same loss up to float rounding."""
    from .precision import resolve_precision

    if config.fused_attention is not None:
        return bool(config.fused_attention)
    if device.type == "cuda":
        return True
    return device.type == "cpu" and not resolve_precision(config.precision, device).bf16


class TrainingMethod:
    """What a pretraining method tells the trainer; subclasses set the model and the loss."""

    name: str
    #: the loader gives MAE's pretraining augmentation (``load_dataset(train=True)``)
    loader_augmentation = True
    #: the per-epoch original / masked / reconstruction figure applies
    reconstruction_figure = True
    #: the fewest images a micro-batch may hold over all processes, and what needs them
    min_global_batch = 1
    min_global_batch_reason = ""

    def model_config(self, config: "TrainConfig") -> Any:
        """The model's configuration for ``config`` (its preset with the overrides)."""
        raise NotImplementedError

    def build_model(self, model_config: Any, config: "TrainConfig", info: "DistInfo") -> nn.Module:
        """The freshly initialised model, on ``info.device``."""
        raise NotImplementedError

    def inputs(self, imgs: torch.Tensor, model_config: Any, generator: torch.Generator,
               device: torch.device) -> torch.Tensor:
        """The model's input for a loader batch (B, 3, H, W): the images on the training device."""
        return imgs.to(device, non_blocking=True)

    def loss(self, model: nn.Module, inputs: torch.Tensor, config: "TrainConfig", generator: torch.Generator,
             info: "DistInfo") -> torch.Tensor:
        """The scalar loss of one micro-batch (under autocast; gradients flow)."""
        raise NotImplementedError


class MAEMethod(TrainingMethod):
    """The MAE (IPOL sec. 4; MAE's ``engine_pretrain``): masked-patch reconstruction loss of
    :class:`~maelens.models.MaskedAutoencoderViT`, on images the loader augments (crop, flip)."""

    name = MAE

    def model_config(self, config: "TrainConfig") -> Any:
        from ..models.presets import get_config

        return get_config(config.preset, **config.model_overrides, norm_pix_loss=config.norm_pix_loss,
                          loss_target=config.loss_target)

    def build_model(self, model_config: Any, config: "TrainConfig", info: "DistInfo") -> nn.Module:
        from ..models.mae import MaskedAutoencoderViT, set_fused_attention

        model = MaskedAutoencoderViT(model_config)
        set_fused_attention(model, use_fused_attention(config, info.device))
        return model.to(info.device)

    def loss(self, model: nn.Module, inputs: torch.Tensor, config: "TrainConfig", generator: torch.Generator,
             info: "DistInfo") -> torch.Tensor:
        loss, _, _ = model(inputs, config.mask_ratio, masking=config.masking, generator=generator)
        return loss


class SimCLRMethod(TrainingMethod):
    """SimCLR (Chen et al. 2020; IPOL sec. 6): two augmented views of each image (the batched augmentation
    of :mod:`maelens.data.augment`, drawn from the run's generator), the NT-Xent loss of their projections.

    Under DDP the projections of every process are gathered (with gradients) so that each image's
    negatives are the 2N - 2 other views of the global batch, as SimCLR; BatchNorm is synchronised across
    processes on CUDA (SimCLR's global BN; torch's SyncBatchNorm has no CPU kernel, so CPU processes keep
    their own batch statistics).
    """

    name = SIMCLR
    loader_augmentation = False  # the views are made here, from the plain images
    reconstruction_figure = False
    #: NT-Xent needs negatives, the other images of the global batch (with one image the loss is 0)
    min_global_batch = 2
    min_global_batch_reason = "method=simclr (its NT-Xent loss contrasts each image with the others of the batch)"

    def model_config(self, config: "TrainConfig") -> Any:
        from ..models.simclr_config import get_simclr_config

        return get_simclr_config(config.preset, **config.model_overrides)

    def build_model(self, model_config: Any, config: "TrainConfig", info: "DistInfo") -> nn.Module:
        from ..models.simclr import SimCLR

        model = SimCLR(model_config)
        if info.distributed and info.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return model.to(info.device)

    def inputs(self, imgs: torch.Tensor, model_config: Any, generator: torch.Generator,
               device: torch.device) -> torch.Tensor:
        """(2B, 3, S, S): the first augmented view of each image, then the second, normalised."""
        from ..data.augment import SimCLRAugment
        from ..data.normalization import denormalize

        c = model_config
        augment = SimCLRAugment.from_config(c)
        mean = torch.tensor(c.norm_mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(c.norm_std, device=device).view(1, 3, 1, 1)
        with torch.no_grad():
            # the loader's normalised images back to [0, 1], where the colour operations are defined
            pixels = denormalize(imgs.to(device, non_blocking=True).float(), c.norm_mean, c.norm_std)
            views = torch.cat([augment(pixels, generator), augment(pixels, generator)])
            return (views - mean) / std

    def loss(self, model: nn.Module, inputs: torch.Tensor, config: "TrainConfig", generator: torch.Generator,
             info: "DistInfo") -> torch.Tensor:
        from ..models.contrastive import nt_xent_loss
        from .distributed import gather_rows

        z_a, z_b = model(inputs).chunk(2)
        # every process's projections: the negatives are the global batch's, and every process computes the
        # same global loss; DDP's average of the per-process gradients is then exactly that loss's gradient
        z_a, z_b = gather_rows(z_a, info), gather_rows(z_b, info)
        temperature = _bare(model).config.temperature
        return nt_xent_loss(z_a, z_b, temperature)


def _bare(model: nn.Module) -> nn.Module:
    from ..checkpoint.store import unwrap_model

    return unwrap_model(model)


def _cae_method() -> TrainingMethod:
    from .cae_method import CAEMethod  # imported here: it builds on MAEMethod

    return CAEMethod()


#: Every pretraining method by name: one entry per name of :data:`maelens.choices.TRAINING_METHODS`.
METHOD_REGISTRY: dict[str, TrainingMethod] = {MAE: MAEMethod(), SIMCLR: SimCLRMethod(), CAE: _cae_method()}


def get_method(name: str) -> TrainingMethod:
    """The :class:`TrainingMethod` called ``name`` (one of :data:`~maelens.choices.TRAINING_METHODS`)."""
    if name not in METHOD_REGISTRY:
        raise ConfigError(f"method must be one of {', '.join(TRAINING_METHODS)}, got {name!r}")
    return METHOD_REGISTRY[name]


def method_of_preset(preset: str) -> str:
    """The method whose model a preset names: ``simclr`` for the SimCLR presets, ``cae`` for the CAE ones,
    else ``mae``."""
    return SIMCLR if preset in SIMCLR_PRESETS else CAE if preset in CAE_PRESETS else MAE


__all__ = ["MAE", "MAEMethod", "METHOD_REGISTRY", "TrainingMethod", "SimCLRMethod", "get_method", "method_of_preset"]
