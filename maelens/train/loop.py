"""The pretraining loop: MAE's ``main_pretrain``/``engine_pretrain`` recipe (AdamW, per-iteration lr,
gradient accumulation, masked-patch loss) as used by the IPOL paper, sec. 4, with checkpoints that
resume exactly, DistributedDataParallel under ``torchrun``, logs and a reconstruction figure per epoch.
The same loop trains the SimCLR baseline (``method="simclr"``): only the model and how a batch becomes
a loss differ (:mod:`.methods`).

Epochs are numbered from 0 as in the official MAE code: ``checkpoint.pt`` with ``epoch == k`` holds
the state after epoch k, and a resumed run starts at epoch k + 1.
"""

from __future__ import annotations

import math
import random
import re
import shutil
import sys
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Subset
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from .. import run_files
from ..data.device_batches import device_batches
from ..errors import CheckpointError, ConfigError, DataError, MaelensError, OutputError
from ..io import atomic_path, folder_lock, write_json
from .config import DEFAULT_BATCH_SIZE, DEFAULT_WARMUP_EPOCHS, TrainConfig
from .distributed import DistInfo, all_reduce_mean, cleanup, init_distributed
from .methods import get_method
from .optim import build_optimizer
from .precision import resolve_precision, usable_cpu_threads
from .runlog import RunLog
from .schedule import lr_at, set_lr
from .thread_governor import ThreadGovernor

CHECKPOINT_NAME = run_files.CHECKPOINT
NUMBERED = re.compile(r"checkpoint-(\d{4,})\.pt$")
#: Temporary files of ``checkpoint.pt`` / ``checkpoint-NNNN.pt`` left by a save that was killed midway
#: (named by :func:`maelens.io.atomic_path`: ``.checkpoint.pt.<random>.pt``).
STALE_CHECKPOINT = re.compile(r"^\.checkpoint(-\d{4,})?\.pt\..+\.pt$")


class DivergenceError(MaelensError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


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
    """Pretrain an MAE as ``config`` says; ``dataset`` (items ``(image, label)`` or ``image``) replaces
    ``config.data``, ``val_dataset`` supplies the images of the per-epoch reconstruction figure.

    ``on_epoch_end(EpochEnd)`` is called after every epoch: the trainer draws nothing itself, the caller
    wires the figure it wants (``maelens train`` and the experiments pass
    :func:`~maelens.plots.reconstruction.epoch_reconstruction`, which writes ``recon_epoch_NNN.png``).

    A default adapted to the run (the warm-up shortened to ``epochs``, the batch size lowered to a small
    data set) is said once through ``notify(message)`` (default: ``note: ...`` on stderr unless
    ``config.quiet``) and listed under ``notes`` in the summary.

    Under ``torchrun`` every process calls this; only rank 0 writes files, and it holds the lock of
    ``config.out`` for the whole run (:func:`maelens.io.folder_lock`): a second run started into the same
    folder is refused with an :class:`~maelens.errors.OutputError` naming the holder's pid. Raises
    :class:`DivergenceError` on a NaN/inf loss, after keeping the last good checkpoint, and a
    :class:`~maelens.errors.DataError` when the training images hold NaN or infinite values.
    """
    info = init_distributed(config.device)
    try:
        with folder_lock(config.out_dir) if info.is_main else nullcontext():
            return _Run(config, info, dataset, val_dataset, notify, on_epoch_end).run()
    finally:
        cleanup(info)


def remove_stale_checkpoints(folder: Path) -> list[Path]:
    """Delete the temporary checkpoint files an interrupted save left in a run ``folder`` (a killed
    process cannot clean up after itself; no save is in flight when a run starts) and return them."""
    if not folder.is_dir():
        return []
    stale = [p for p in folder.iterdir() if STALE_CHECKPOINT.match(p.name) and p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _stored_float_images(dataset: Dataset) -> tuple[Any, np.ndarray] | None:
    """(float images (N, ...), the dataset's indices into them) when ``dataset`` keeps its images as an
    in-memory float array (an :class:`~maelens.data.ImageDataset` of model inputs, a TensorDataset, or a
    Subset of either), else None. Only float images can hold NaN or inf: pixels are uint8."""
    indices = np.arange(len(dataset))
    while isinstance(dataset, Subset):
        indices = np.asarray(dataset.indices)[indices]
        dataset = dataset.dataset
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


def _print_note(message: str) -> None:
    """The default ``notify`` of :func:`train` (unless ``quiet``): the message on stderr."""
    tqdm.write(f"note: {message}", file=sys.stderr)


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def derived_seed(*parts: int) -> int:
    """An independent 63-bit seed for each (seed, rank, purpose, ...) combination."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint64)[0]) >> 1


def _images(batch: Any) -> torch.Tensor:
    """The image tensor of a data-loader batch: ``(images, labels)``, ``[images]`` or ``images``."""
    return batch[0] if isinstance(batch, (list, tuple)) else batch


def accumulate_gradients(model: torch.nn.Module, micro_batches: list[torch.Tensor], *, mask_ratio: float,
                         masking: str = "random", generator: torch.Generator | None = None,
                         device: torch.device | str = "cpu", ddp: DistributedDataParallel | None = None,
                         autocast: Callable[[], AbstractContextManager] = nullcontext) -> torch.Tensor:
    """Forward and backward each micro-batch (B, 3, H, W) through the MAE with its loss divided by their
    number, so the summed gradients equal those of one batch holding them all (MAE's ``accum_iter``); DDP
    all-reduces only on the last. Returns the mean loss (detached scalar)."""
    def mae_loss(imgs: torch.Tensor) -> torch.Tensor:
        return model(imgs, mask_ratio, masking=masking, generator=generator)[0]

    return accumulate(mae_loss, micro_batches, prepare=lambda imgs: imgs.to(device, non_blocking=True),
                      device=device, ddp=ddp, autocast=autocast)


def accumulate(loss_of: Callable[[Any], torch.Tensor], micro_batches: list[torch.Tensor], *,
               prepare: Callable[[torch.Tensor], Any] = lambda imgs: imgs, device: torch.device | str = "cpu",
               ddp: DistributedDataParallel | None = None,
               autocast: Callable[[], AbstractContextManager] = nullcontext) -> torch.Tensor:
    """Gradients of one optimizer step, whatever the method: each micro-batch is turned into the model's
    input by ``prepare`` (outside autocast), its loss ``loss_of(input)`` (under ``autocast``) divided by
    the number of micro-batches is back-propagated, and DDP all-reduces only on the last. Returns the
    mean loss (detached scalar)."""
    total = torch.zeros((), device=device)
    for k, imgs in enumerate(micro_batches):
        last = k == len(micro_batches) - 1
        inputs = prepare(imgs)
        with ddp.no_sync() if ddp is not None and not last else nullcontext():
            with autocast():
                loss = loss_of(inputs)
            (loss / len(micro_batches)).backward()
        total += loss.detach().float()
    return total / len(micro_batches)


class _Run:
    """One training run: set-up in ``__init__``, the epochs in :meth:`run`."""

    def __init__(self, config: TrainConfig, info: DistInfo, dataset: Dataset | None, val_dataset: Dataset | None,
                 notify: Callable[[str], None] | None = None,
                 on_epoch_end: Callable[[EpochEnd], None] | None = None):
        self.config = config
        self.on_epoch_end = on_epoch_end
        self.notify = notify if notify is not None else (_print_note if not config.quiet else lambda message: None)
        self.info = info
        self.out = config.out_dir
        self.model_config = config.model_config()
        resume_path = self._resume_path()
        if resume_path is None and (self.out / CHECKPOINT_NAME).exists():
            raise ConfigError(
                f"{self.out / CHECKPOINT_NAME} already exists: pass resume=auto to continue that run, "
                f"or choose another out=FOLDER")

        if info.is_main:
            remove_stale_checkpoints(self.out)
        self.precision = resolve_precision(config.precision, info.device)
        if info.device.type == "cpu" and torch.get_num_threads() > usable_cpu_threads():
            torch.set_num_threads(usable_cpu_threads())  # never more threads than cores we may run on
        # -- issue 23: n or n - 1 CPU threads, whichever trains faster beside the machine's other load
        self.governor = ThreadGovernor(torch.get_num_threads(), enabled=info.device.type == "cpu" and not
                                       info.distributed, notify=self.notify if info.is_main else None)
        seed_everything(config.seed)
        self.method = get_method(config.method)
        self.model = self.method.build_model(self.model_config, config, info)

        self.explicit_data = dataset is not None
        self.dataset = self._training_data(dataset)
        figure = info.is_main and self.method.reconstruction_figure  # SimCLR reconstructs nothing
        self.val_imgs, self.val_noise = self._figure_inputs(val_dataset) if figure else (None, None)

        self.sampler = DistributedSampler(self.dataset, num_replicas=info.world_size, rank=info.rank,
                                          shuffle=True, seed=config.seed)
        self.batch_size = config.batch_size_for(len(self.dataset), info.world_size)
        self.notes = self._adapted_defaults()
        self.mask_generator = torch.Generator()
        # -- issue 23: images kept in memory are batched and augmented on the device, drawing from the run's
        #    (checkpointed) generator; image files keep a DataLoader (None)
        self.loader = device_batches(self.dataset, self.sampler, self.batch_size, device=info.device,
                                     generator=self.mask_generator)
        if self.loader is None:
            self.loader = DataLoader(self.dataset, batch_size=self.batch_size, sampler=self.sampler,
                                     num_workers=config.num_workers, pin_memory=info.device.type == "cuda",
                                     drop_last=True)
        self.steps_per_epoch = len(self.loader) // config.accum_iter
        if self.steps_per_epoch == 0:
            raise ConfigError(
                f"no full optimizer step fits in an epoch: {len(self.dataset)} images for batch size "
                f"{self.batch_size} x accum_iter {config.accum_iter} x {info.world_size} process(es); "
                f"lower batch_size or accum_iter, or use more images")
        self.peak_lr = config.peak_lr(info.world_size, self.batch_size)
        self.optimizer = build_optimizer(self.model, lr=self.peak_lr, weight_decay=config.weight_decay,
                                         decay_tokens=config.decay_tokens,
                                         betas=config.betas)
        self.start_epoch = 0
        self.global_step = 0
        self.history: list[dict[str, Any]] = []
        self.resumed_from: Path | None = None
        self.saved_rng: dict[str, Any] | None = None
        seed_everything(derived_seed(config.seed, info.rank, 0))
        self.mask_generator.manual_seed(derived_seed(config.seed, info.rank, 1))
        if resume_path is not None:
            self._load(resume_path)

        device_ids = [info.device.index] if info.device.type == "cuda" else None
        self.ddp = DistributedDataParallel(self.model, device_ids=device_ids) if info.distributed else None
        wrapped = self.ddp if self.ddp is not None else self.model
        self.step_model = torch.compile(wrapped) if config.compile else wrapped
        self.checkpoint_path: Path | None = self.resumed_from

    # ---- set-up -----------------------------------------------------------------------------
    def _adapted_defaults(self) -> list[str]:
        """One sentence per default that was changed to fit this run (the values given are never changed)."""
        c, notes = self.config, []
        if c.warmup_epochs is None and c.effective_warmup_epochs < DEFAULT_WARMUP_EPOCHS:
            notes.append(f"warm-up shortened to {c.epochs} epoch(s): the default {DEFAULT_WARMUP_EPOCHS:g} is longer "
                         f"than epochs={c.epochs} (set warmup_epochs to choose)")
        if c.batch_size is None and self.batch_size < DEFAULT_BATCH_SIZE:
            per_step = f" x accum_iter {c.accum_iter}" if c.accum_iter > 1 else ""
            per_step += f" x {self.info.world_size} processes" if self.info.world_size > 1 else ""
            notes.append(f"batch size lowered to {self.batch_size}: the default {DEFAULT_BATCH_SIZE}{per_step} is "
                         f"more than the {len(self.dataset)} training images (set batch_size to choose)")
        return notes

    def _resume_path(self) -> Path | None:
        resume = self.config.resume
        if not resume:
            return None
        if resume == "auto":
            path = self.out / CHECKPOINT_NAME
            return path if path.is_file() else None
        return Path(resume)

    def _training_data(self, dataset: Dataset | None) -> Dataset:
        c = self.config
        if dataset is None:
            from ..data import load_dataset

            dataset = load_dataset(c.data, image_size=self.model_config.img_size, split=c.split,
                                   train=self.method.loader_augmentation,
                                   limit=c.num_images, seed=c.seed, mean=self.model_config.norm_mean,
                                   std=self.model_config.norm_std)
        elif c.num_images is not None and c.num_images < len(dataset):
            dataset = Subset(dataset, range(c.num_images))
        if len(dataset) == 0:
            raise DataError(f"the training data {c.data!r} holds no images")
        if _stored_float_images(dataset) is not None:  # cheap when the images are in memory: check them now
            self._refuse_nonfinite_data(dataset)
        return dataset

    def _data_name(self) -> str:
        return "given to train()" if self.explicit_data else repr(self.config.data)

    def _refuse_nonfinite_data(self, dataset: Dataset | None = None) -> None:
        """Raise a DataError naming the data and how many of its images hold NaN or infinite values,
        if any do: such images make the loss NaN whatever the learning rate."""
        dataset = self.dataset if dataset is None else dataset
        bad = nonfinite_images(dataset)
        if bad.size:
            raise DataError(f"the training data {self._data_name()} holds {bad.size} of {len(dataset)} images with "
                            f"NaN or infinite values (first: image {bad[0]}); the loss cannot be computed from "
                            f"them: fix or remove those images")

    def _figure_inputs(self, val_dataset: Dataset | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """A fixed batch of images and fixed mask noise for the per-epoch reconstruction figure."""
        c = self.config
        if c.recon_images == 0:
            return None, None
        if val_dataset is None:
            val_dataset = self._validation_data()
        count = min(c.recon_images, len(val_dataset))
        torch.manual_seed(c.seed)  # a training dataset's augmentations then draw the same crops on resume
        imgs = torch.stack([_images(val_dataset[i]) for i in range(count)]).to(self.info.device)
        generator = torch.Generator().manual_seed(c.seed)
        noise, _ = self.model.masking_noise(count, c.mask_ratio, c.masking, generator, self.info.device)
        return imgs, noise

    def _validation_data(self) -> Dataset:
        """The test split without augmentation when the data has one, else the training images."""
        if self.explicit_data:
            return self.dataset
        from ..data import load_dataset

        c = self.config
        kwargs = dict(image_size=self.model_config.img_size, train=False, limit=c.recon_images, seed=c.seed,
                      mean=self.model_config.norm_mean, std=self.model_config.norm_std)
        try:
            return load_dataset(c.data, split="test", **kwargs)
        except DataError:
            return load_dataset(c.data, split=c.split, **kwargs)

    def _load(self, path: Path) -> None:
        from ..checkpoint import load_checkpoint

        ckpt = load_checkpoint(path, device="cpu")
        raw = ckpt.raw or {}
        if raw.get("optimizer") is None or ckpt.epoch is None:
            raise CheckpointError(f"{path}: not a maelens training checkpoint (no optimizer state or epoch), "
                                  f"so it cannot be resumed")
        stored, wanted = ckpt.config.to_dict(), self.model_config.to_dict()
        differ = sorted(k for k in wanted if stored.get(k) != wanted[k])
        if differ:
            raise CheckpointError(f"{path}: its model differs from this run's in {', '.join(differ)}; "
                                  f"resume with the same preset and loss")
        self.model.load_state_dict(ckpt.model.state_dict())
        self.optimizer.load_state_dict(raw["optimizer"])
        extra = raw.get("extra") or {}
        self.start_epoch = int(ckpt.epoch) + 1
        self.global_step = int(extra.get("global_step", self.start_epoch * self.steps_per_epoch))
        self.history = list(extra.get("history", []))
        states = extra.get("rank_states") or []
        if len(states) == self.info.world_size:
            self.saved_rng = states[self.info.rank]
        else:  # another number of processes: the saved per-rank streams do not map, so seed afresh
            seed_everything(derived_seed(self.config.seed, self.info.rank, 0, self.start_epoch))
            self.mask_generator.manual_seed(derived_seed(self.config.seed, self.info.rank, 1, self.start_epoch))
        self.resumed_from = path

    # ---- the epochs -------------------------------------------------------------------------
    def run(self) -> TrainResult:
        c = self.config
        started = time.perf_counter()
        keep = self.start_epoch if self.resumed_from is not None else None
        with RunLog(self.out, enabled=self.info.is_main, keep_before_epoch=keep) as log:
            log.log(csv_row=False, kind="start", epoch=self.start_epoch, step=self.global_step,
                    **self.precision.to_dict(), device=str(self.info.device), threads=torch.get_num_threads())
            if self.info.is_main:
                for message in self.notes:
                    self.notify(message)
            if self.info.is_main and not c.quiet:
                tqdm.write(f"precision: {self.precision.name} ({self.precision.reason}); "
                           f"{torch.get_num_threads()} CPU thread(s)", file=sys.stderr)
            if self.saved_rng is not None:
                self._restore_states(self.saved_rng)
            for epoch in range(self.start_epoch, c.epochs):
                self.sampler.set_epoch(epoch)
                record = self._train_epoch(epoch, log)
                self.history.append(record)
                log.log(**record)
                if self.info.is_main and not c.quiet:
                    tqdm.write(f"epoch {epoch} ({epoch + 1}/{c.epochs}): loss {record['loss']:.4f}, "
                               f"lr {record['lr']:.2e}, {record['images_per_s']:.0f} images/s", file=sys.stderr)
                if self.info.is_main and self.on_epoch_end is not None:
                    self.on_epoch_end(EpochEnd(epoch=epoch, loss=record["loss"], model=self.model, config=c,
                                               out_dir=self.out, images=self.val_imgs, noise=self.val_noise))
                if (epoch + 1) % c.save_every == 0 or epoch + 1 == c.epochs:
                    self._save_checkpoint(epoch)
            self.governor.restore()  # issue 23: the thread count the run started with
        summary = self._summary("completed", time.perf_counter() - started)
        if self.info.is_main:
            write_json(self.out / run_files.SUMMARY, summary)
        self.model.eval()
        return TrainResult(checkpoint=self.checkpoint_path, final_loss=summary["final_loss"],
                           history=self.history, out_dir=self.out, model=self.model, summary=summary)

    def _autocast(self) -> AbstractContextManager:
        return self.precision.autocast(self.info.device.type)

    def _train_epoch(self, epoch: int, log: RunLog) -> dict[str, Any]:
        c = self.config
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        batches = iter(self.loader)
        images_per_step = c.effective_batch_size(self.info.world_size, self.batch_size)
        losses: list[float] = []
        epoch_start = time.perf_counter()
        bar = tqdm(total=self.steps_per_epoch, desc=f"epoch {epoch} ({epoch + 1}/{c.epochs})", unit="step",
                   disable=c.quiet or not self.info.is_main, leave=False)
        lr = self.peak_lr
        with bar:
            for step in range(self.steps_per_epoch):
                step_start = time.perf_counter()
                lr = lr_at(epoch + step / self.steps_per_epoch, peak_lr=self.peak_lr, epochs=c.epochs,
                           warmup_epochs=c.effective_warmup_epochs, min_lr=c.min_lr, schedule=c.schedule)
                set_lr(self.optimizer, lr)
                micro_batches = [_images(next(batches)) for _ in range(c.accum_iter)]
                loss = self._accumulate(micro_batches)
                if not math.isfinite(loss):
                    if any(not torch.isfinite(imgs).all() for imgs in micro_batches):
                        self._refuse_nonfinite_data()  # bad images, not a bad learning rate
                    self._diverged(epoch, loss)
                if c.clip_grad is not None:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.clip_grad)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.global_step += 1
                losses.append(loss)
                now = time.perf_counter()
                self.governor.step_done(now - step_start)  # issue 23: may change the CPU thread count
                log.log(kind="step", epoch=epoch, step=self.global_step, loss=loss, lr=lr,
                        images_per_s=images_per_step / (now - step_start), time_s=now - epoch_start)
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
        elapsed = time.perf_counter() - epoch_start
        return {"kind": "epoch", "epoch": epoch, "step": self.global_step, "loss": float(np.mean(losses)),
                "lr": lr, "images_per_s": images_per_step * len(losses) / elapsed, "time_s": elapsed}

    def _accumulate(self, micro_batches: list[torch.Tensor]) -> float:
        """Gradients of one optimizer step; the loss averaged over micro-batches and processes."""
        c, method, generator, info = self.config, self.method, self.mask_generator, self.info
        loss = accumulate(lambda inputs: method.loss(self.step_model, inputs, c, generator, info), micro_batches,
                          prepare=lambda imgs: method.inputs(imgs, self.model_config, generator, info.device),
                          device=info.device, ddp=self.ddp, autocast=self._autocast)
        return float(all_reduce_mean(loss, info))

    def _diverged(self, epoch: int, loss: float) -> None:
        where = f"{self.checkpoint_path}" if self.checkpoint_path else "none was written yet"
        message = (f"the training loss became {loss} at epoch {epoch} (step {self.global_step + 1}); stopped. "
                   f"Last good checkpoint: {where}. Try a lower blr=..., clip_grad=NORM, or precision=fp32")
        if self.info.is_main:
            write_json(self.out / run_files.SUMMARY, self._summary("diverged", None, message))
        raise DivergenceError(message)

    # ---- outputs ----------------------------------------------------------------------------
    def _capture_states(self) -> dict[str, Any]:
        from ..checkpoint import capture_rng_state

        return {"rng": capture_rng_state(), "mask_generator": self.mask_generator.get_state()}

    def _restore_states(self, states: dict[str, Any]) -> None:
        from ..checkpoint import restore_rng_state

        restore_rng_state(states["rng"])
        self.mask_generator.set_state(states["mask_generator"])

    def _save_checkpoint(self, epoch: int) -> None:
        """Atomic ``checkpoint.pt`` (and a numbered copy when ``keep_last``), with every rank's RNG states."""
        from ..checkpoint import save_checkpoint

        states = self._capture_states()
        if self.info.distributed:
            gathered: list[Any] = [None] * self.info.world_size
            dist.all_gather_object(gathered, states)
        else:
            gathered = [states]
        if not self.info.is_main:
            return
        extra = {"global_step": self.global_step, "history": self.history, "rank_states": gathered,
                 "world_size": self.info.world_size}
        path = self.out / CHECKPOINT_NAME
        try:
            save_checkpoint(path, self.model, epoch=epoch, optimizer=self.optimizer,
                            train_config=self.config.to_dict(), extra=extra)
        except (OSError, OutputError) as err:  # disk full, folder removed...: the previous checkpoint.pt is intact
            kept = "the previous one is kept" if self.checkpoint_path else "no checkpoint was written yet"
            why = err if isinstance(err, OutputError) else f"could not save {path} ({err.strerror or err})"
            raise CheckpointError(f"{why} after epoch {epoch}; {kept}") from err
        self.checkpoint_path = path
        if self.config.keep_last:
            self._keep_numbered(path, epoch)

    def _keep_numbered(self, path: Path, epoch: int) -> None:
        with atomic_path(self.out / f"checkpoint-{epoch:04d}.pt") as tmp:
            shutil.copyfile(path, tmp)
        numbered = sorted((int(m.group(1)), p) for p in self.out.glob("checkpoint-*.pt")
                          if (m := NUMBERED.search(p.name)))
        for _, old in numbered[:-self.config.keep_last]:
            old.unlink(missing_ok=True)

    def _summary(self, status: str, time_s: float | None, message: str | None = None) -> dict[str, Any]:
        from .. import __version__

        final = self.history[-1]["loss"] if self.history else float("nan")
        return {
            "status": status,
            "message": message,
            "out_dir": str(self.out),
            "checkpoint": str(self.checkpoint_path) if self.checkpoint_path else None,
            "resumed_from": str(self.resumed_from) if self.resumed_from else None,
            "epochs_completed": len(self.history),
            "final_loss": final,
            "history": self.history,
            "model": self.model_config.to_dict(),
            "trainable_parameters": self.model.num_trainable_parameters(),
            "train_config": self.config.to_dict(),
            "images": len(self.dataset),
            "world_size": self.info.world_size,
            "device": str(self.info.device),
            "precision": self.precision.to_dict(),
            "threads": torch.get_num_threads(),
            "batch_size": self.batch_size,
            "effective_batch_size": self.config.effective_batch_size(self.info.world_size, self.batch_size),
            "warmup_epochs": self.config.effective_warmup_epochs,
            "notes": self.notes,
            "peak_lr": self.peak_lr,
            "steps_per_epoch": self.steps_per_epoch,
            "time_s": time_s,
            "maelens_version": __version__,
        }

__all__ = ["CHECKPOINT_NAME", "DivergenceError", "EpochEnd", "NUMBERED", "STALE_CHECKPOINT", "TrainResult",
    "accumulate", "accumulate_gradients", "derived_seed", "nonfinite_images", "remove_stale_checkpoints",
    "seed_everything", "train"]
