"""Pretraining as a task of the one run loop (:mod:`.runloop`): MAE's ``main_pretrain``/``engine_pretrain``
recipe (AdamW, per-iteration lr, gradient accumulation, masked-patch loss) as used by the IPOL paper, sec. 4,
and the SimCLR baseline (``method="simclr"``). Which model is trained and how a batch becomes a loss is a
:class:`~.methods.TrainingMethod`; :class:`PretrainTask` adds the data, the checkpoint format and the per-epoch
event; :class:`~.runloop.RunLoop` does the rest (checkpoints that resume exactly, DDP under ``torchrun``,
logs, the summary). The trainer draws nothing: ``on_epoch_end`` receives what a reconstruction figure needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from ..errors import CheckpointError, DataError
from .config import TrainConfig
from .distributed import DistInfo
from .methods import get_method
from .optim import build_optimizer
from .runloop import (
    CHECKPOINT_NAME,
    NUMBERED,
    STALE_CHECKPOINT,
    BaseTask,
    DivergenceError,
    RunLoop,
    Stored,
    accumulate,
    derived_seed,
    remove_stale_checkpoints,
    run_task,
    seed_everything,
)


@dataclass
class TrainResult:
    """What :func:`train` leaves: the last ``checkpoint`` written, the ``final_loss`` (mean of the
    last epoch), per-epoch ``history`` records, the ``out_dir``, the trained ``model`` (eval mode)
    and the ``summary`` also written to ``summary.json``."""

    checkpoint: Path | None
    final_loss: float
    history: list[dict[str, Any]]
    out_dir: Path
    model: torch.nn.Module
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EpochEnd:
    """What :func:`train` hands to ``on_epoch_end`` after every epoch (in the process that writes files):
    the epoch, its mean training loss, the model, the run's config and folder, and the fixed batch of
    ``config.recon_images`` images with their fixed mask noise (None when 0, or for a method that
    reconstructs nothing) - what :func:`maelens.plots.reconstruction.epoch_reconstruction` draws."""

    epoch: int
    loss: float
    model: torch.nn.Module
    config: TrainConfig
    out_dir: Path
    images: torch.Tensor | None
    noise: torch.Tensor | None


def train(config: TrainConfig, *, dataset: Dataset | None = None, val_dataset: Dataset | None = None,
          notify: Callable[[str], None] | None = None,
          on_epoch_end: Callable[[EpochEnd], None] | None = None) -> TrainResult:
    """Pretrain an MAE (or SimCLR) as ``config`` says; ``dataset`` (items ``(image, label)`` or ``image``)
    replaces ``config.data``, ``val_dataset`` supplies the images of the per-epoch reconstruction figure.

    ``on_epoch_end(EpochEnd)`` is called after every epoch: the trainer draws nothing itself, the caller
    wires the figure it wants (``maelens train`` and the experiments pass
    :func:`~maelens.plots.reconstruction.epoch_reconstruction`, which writes ``recon_epoch_NNN.png``).

    A default adapted to the run (the warm-up shortened to ``epochs``, the batch size lowered to a small
    data set), and a setting a resumed run changed on purpose (more ``epochs``, another ``device``), is said
    once through ``notify(message)`` (default: ``note: ...`` on stderr unless ``config.quiet``) and listed
    under ``notes`` / ``changed`` in the summary.

    Under ``torchrun`` every process calls this; only rank 0 writes files, holding the lock of ``config.out``
    (:func:`~.runloop.run_task`). Raises :class:`DivergenceError` on a NaN/inf loss, after keeping the last
    good checkpoint, and a :class:`~maelens.errors.DataError` when the training images hold NaN or infinite
    values; whatever ends the run, ``summary.json`` says how.
    """
    loop = run_task(config, PretrainTask(config, dataset, val_dataset, on_epoch_end), notify)
    summary = loop.summary
    return TrainResult(checkpoint=loop.checkpoint_path, final_loss=summary["final_loss"], history=loop.history,
                       out_dir=loop.out, model=loop.model, summary=summary)


class PretrainTask(BaseTask):
    """Pretraining an MAE or SimCLR (:class:`~.methods.TrainingMethod`) for :class:`~.runloop.RunLoop`: the training
    images from ``config.data`` (or ``dataset``), the model and loss of ``config.method``, AdamW with MAE's
    weight-decay groups, checkpoints in maelens's format, and an :class:`EpochEnd` after every epoch."""

    def __init__(self, config: TrainConfig, dataset: Dataset | None = None, val_dataset: Dataset | None = None,
                 on_epoch_end: Callable[[EpochEnd], None] | None = None):
        self.config, self.given, self.val_dataset, self.on_epoch_end = config, dataset, val_dataset, on_epoch_end
        self.method = get_method(config.method)
        self.model_config = config.model_config()
        self.min_global_batch = self.method.min_global_batch
        self.min_global_batch_reason = self.method.min_global_batch_reason
        self.val_imgs: torch.Tensor | None = None
        self.val_noise: torch.Tensor | None = None

    # ---- data and model ---------------------------------------------------------------------
    def datasets(self, info: DistInfo) -> Dataset:
        c = self.config
        self.info = info
        dataset = self.given
        if dataset is None:
            from ..data import load_dataset

            dataset = load_dataset(c.data, image_size=self.model_config.img_size, split=c.split,
                                   train=self.method.loader_augmentation, limit=c.num_images, seed=c.seed,
                                   mean=self.model_config.norm_mean, std=self.model_config.norm_std)
        elif c.num_images is not None and c.num_images < len(dataset):
            dataset = Subset(dataset, range(c.num_images))
        if len(dataset) == 0:
            raise DataError(f"the training data {c.data!r} holds no images")
        self.dataset = dataset
        if _stored_float_images(dataset) is not None:  # cheap when the images are in memory: check them now
            self._refuse_nonfinite_data()
        return dataset

    def build_model(self, info: DistInfo) -> nn.Module:
        self.model = self.method.build_model(self.model_config, self.config, info)
        if info.is_main and self.method.reconstruction_figure:  # SimCLR reconstructs nothing
            self.val_imgs, self.val_noise = self._figure_inputs()
        return self.model

    def optimizer(self, model: nn.Module, lr: float) -> torch.optim.Optimizer:
        c = self.config
        return build_optimizer(model, lr=lr, weight_decay=c.weight_decay, decay_tokens=c.decay_tokens, betas=c.betas)

    def _data_name(self) -> str:
        return "given to train()" if self.given is not None else repr(self.config.data)

    def _refuse_nonfinite_data(self) -> None:
        """Raise a DataError naming the data and how many of its images hold NaN or infinite values,
        if any do: such images make the loss NaN whatever the learning rate."""
        bad = nonfinite_images(self.dataset)
        if bad.size:
            raise DataError(f"the training data {self._data_name()} holds {bad.size} of {len(self.dataset)} images "
                            f"with NaN or infinite values (first: image {bad[0]}); the loss cannot be computed from "
                            f"them: fix or remove those images")

    def _figure_inputs(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """A fixed batch of images and fixed mask noise for the per-epoch reconstruction figure."""
        c = self.config
        if c.recon_images == 0:
            return None, None
        val_dataset = self.val_dataset if self.val_dataset is not None else self._validation_data()
        count = min(c.recon_images, len(val_dataset))
        torch.manual_seed(c.seed)  # a training dataset's augmentations then draw the same crops on resume
        imgs = torch.stack([_images(val_dataset[i]) for i in range(count)]).to(self.info.device)
        generator = torch.Generator().manual_seed(c.seed)
        noise, _ = self.model.masking_noise(count, c.mask_ratio, c.masking, generator, self.info.device)
        return imgs, noise

    def _validation_data(self) -> Dataset:
        """The test split without augmentation when the data has one, else the training images."""
        if self.given is not None:
            return self.dataset
        from ..data import load_dataset

        c, m = self.config, self.model_config
        kwargs = dict(image_size=m.img_size, train=False, limit=c.recon_images, seed=c.seed, mean=m.norm_mean,
                      std=m.norm_std)
        try:
            return load_dataset(c.data, split="test", **kwargs)
        except DataError:
            return load_dataset(c.data, split=c.split, **kwargs)

    def device_loader(self, dataset: Dataset, sampler: Any, batch_size: int, device: torch.device,
                      generator: torch.Generator) -> Any:
        """In-memory images batched and augmented on the device (issue 23): one gather, one copy and one
        batched resampling per step (:func:`~maelens.data.device_batches.device_batches`), drawing the crops
        from the run's checkpointed generator; None for images kept as files (a DataLoader reads those)."""
        from ..data.device_batches import device_batches

        return device_batches(dataset, sampler, batch_size, device=device, generator=generator)

    # ---- one micro-batch ---------------------------------------------------------------------
    def inputs(self, batch: Any, generator: torch.Generator, device: torch.device) -> Any:
        return self.method.inputs(_images(batch), self.model_config, generator, device)

    def loss(self, model: nn.Module, inputs: Any, generator: torch.Generator) -> torch.Tensor:
        return self.method.loss(model, inputs, self.config, generator, self.info)

    def check_nonfinite(self, batches: list[Any]) -> None:
        if any(not torch.isfinite(_images(batch)).all() for batch in batches):
            self._refuse_nonfinite_data()

    # ---- per epoch ----------------------------------------------------------------------------
    def progress(self, record: dict[str, Any]) -> str:
        return f"loss {record['loss']:.4f}, lr {record['lr']:.2e}, {record['images_per_s']:.0f} images/s"

    def epoch_end(self, loop: RunLoop, epoch: int, record: dict[str, Any]) -> None:
        if self.on_epoch_end is not None:
            self.on_epoch_end(EpochEnd(epoch=epoch, loss=record["loss"], model=self.model, config=self.config,
                                       out_dir=loop.out, images=self.val_imgs, noise=self.val_noise))

    # ---- checkpoints and records --------------------------------------------------------------
    def identity(self, model: nn.Module) -> dict[str, Any]:
        return self.model_config.to_dict()

    def save(self, path: Path, model: nn.Module, *, epoch: int, optimizer: torch.optim.Optimizer,
             extra: dict[str, Any]) -> None:
        from ..checkpoint import save_checkpoint

        save_checkpoint(path, model, epoch=epoch, optimizer=optimizer, train_config=self.config.to_dict(), extra=extra)

    def load(self, path: Path) -> Stored:
        from ..checkpoint import load_checkpoint

        ckpt = load_checkpoint(path, device="cpu")
        raw = ckpt.raw or {}
        if raw.get("optimizer") is None or ckpt.epoch is None:
            raise CheckpointError(f"{path}: not a maelens training checkpoint (no optimizer state or epoch), "
                                  f"so it cannot be resumed")
        return Stored(state=ckpt.model.state_dict(), optimizer=raw["optimizer"], epoch=ckpt.epoch,
                      extra=raw.get("extra") or {}, identity=ckpt.config.to_dict(), config=ckpt.train_config or {})

    def summary_fields(self, loop: RunLoop) -> dict[str, Any]:
        return {"final_loss": loop.history[-1]["loss"] if loop.history else float("nan"),
                "model": self.model_config.to_dict(), "train_config": self.config.to_dict(),
                "images": len(loop.dataset)}


def _stored_float_images(dataset: Dataset) -> tuple[Any, np.ndarray] | None:
    """(float images (N, ...), the dataset's indices into them) when ``dataset`` keeps its images as an
    in-memory float array (an :class:`~maelens.data.ImageDataset` of model inputs, a TensorDataset, or a
    Subset of either), else None. Only float images can hold NaN or inf: pixels are uint8."""
    from ..data.dataset import subset_base

    dataset, indices = subset_base(dataset)
    raw = getattr(dataset, "raw", None)
    if raw is not None and getattr(raw, "normalized", False) and not isinstance(raw.images, list):
        return raw.images, indices
    tensors = getattr(dataset, "tensors", None)  # torch.utils.data.TensorDataset
    if tensors and torch.is_tensor(tensors[0]) and tensors[0].is_floating_point():
        return tensors[0], indices
    return None


def nonfinite_images(dataset: Dataset) -> np.ndarray:
    """Indices (ascending) of the images of ``dataset`` that hold a NaN or infinite value: one vectorised
    check for in-memory float images, else one pass over the dataset (items ``(image, label)`` or ``image``)."""
    stored = _stored_float_images(dataset)
    if stored is not None:
        images, indices = stored
        bad = []
        for start in range(0, len(indices), 1024):  # in chunks: no second copy of a large data set
            chunk = torch.as_tensor(images[indices[start:start + 1024]])
            bad.append(start + np.flatnonzero(~torch.isfinite(chunk.reshape(len(chunk), -1)).all(dim=1).numpy()))
        return np.concatenate(bad) if bad else np.zeros(0, np.int64)
    return np.array([i for i in range(len(dataset)) if not torch.isfinite(_images(dataset[i])).all()], dtype=np.int64)


def _images(batch: Any) -> torch.Tensor:
    """The image tensor of a data-loader batch: ``(images, labels)``, ``[images]`` or ``images``."""
    return batch[0] if isinstance(batch, (list, tuple)) else batch


__all__ = ["CHECKPOINT_NAME", "DivergenceError", "EpochEnd", "NUMBERED", "PretrainTask", "STALE_CHECKPOINT",
           "TrainResult", "accumulate", "derived_seed", "nonfinite_images",
           "remove_stale_checkpoints", "seed_everything", "train"]
