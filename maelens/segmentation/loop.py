"""Fine-tuning a :class:`~.model.Segmenter` (IPOL sec. 6 "Pre-training": the segmentation study of Fig. 12),
with the pretraining loop's machinery: AdamW/SGD with per-iteration warm-up + cosine/linear lr
(:mod:`maelens.train.schedule`), precision auto/fp32/bf16 (:mod:`maelens.train.precision`), DDP under
``torchrun`` (:mod:`maelens.train.distributed`), JSONL/CSV logs, atomic checkpoints that resume exactly,
a stop on a NaN loss, tqdm progress.

After every epoch the evaluation split gives the cross-entropy (the paper's Fig. 12 quantity), the pixel
accuracy and the mIoU (:mod:`.metrics`); they go to ``log.csv`` / ``log.jsonl``, ``metrics.json``, the
prediction figure ``predictions.png`` and the curves ``curves.png``. Epochs are numbered from 0; the
checkpoint with ``epoch == k`` holds the state after epoch k.
"""

from __future__ import annotations

import math
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
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from .. import run_files
from ..errors import CheckpointError, ConfigError, DataError
from ..io import folder_lock, write_json
from ..models.mae import MaskedAutoencoderViT, set_fused_attention
from ..models.presets import ModelConfig, get_config
from ..train.distributed import DistInfo, all_reduce_mean, cleanup, init_distributed
from ..train.loop import DivergenceError, derived_seed, remove_stale_checkpoints, seed_everything
from ..train.precision import resolve_precision, usable_cpu_threads
from ..train.schedule import lr_at, set_lr
from .config import SegmentConfig
from .evaluation import EvalResult, evaluate_segmenter, pixel_cross_entropy
from .model import Segmenter, encoder_state
from .optim import build_finetune_optimizer
from .runlog import SegmentationLog
from .store import load_segmenter, save_segmenter

CHECKPOINT_NAME = run_files.CHECKPOINT


@dataclass
class SegmentResult:
    """What :func:`finetune` leaves: the ``checkpoint``, per-epoch ``history`` records, the ``out_dir``, the
    fine-tuned ``model`` (eval mode), the last evaluation (``final``) and the ``summary`` of ``summary.json``."""

    checkpoint: Path | None
    history: list[dict[str, Any]]
    out_dir: Path
    model: Segmenter
    final: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SegmentEpochEnd:
    """What :func:`finetune` hands to ``on_epoch_end`` after every epoch (in the process that writes files):
    the epoch, its log ``record`` and the whole ``history``, the run folder, a ``title`` naming the model, and
    for the first ``config.figure_images`` evaluation images their RGB pixels (n, H, W, 3) in [0, 1], true and
    predicted label maps (n, H, W) and the class names (None when ``figure_images`` is 0) - what
    :func:`maelens.plots.segmentation.epoch_figures` draws."""

    epoch: int
    record: dict[str, Any]
    history: list[dict[str, Any]]
    out_dir: Path
    title: str
    classes: list[str]
    images: np.ndarray | None
    truth: np.ndarray | None
    predictions: np.ndarray | None


def finetune(config: SegmentConfig, *, train_data: Dataset | None = None, eval_data: Dataset | None = None,
             encoder: MaskedAutoencoderViT | None = None,
             on_epoch_end: Callable[[SegmentEpochEnd], None] | None = None) -> SegmentResult:
    """Fine-tune a segmenter as ``config`` says.

    ``on_epoch_end(SegmentEpochEnd)`` is called after every epoch: the loop draws nothing itself
    (``maelens segment`` and the experiments pass :func:`maelens.plots.segmentation.epoch_figures`, which
    writes ``curves.png`` and ``predictions.png``).

    ``train_data`` / ``eval_data`` (items ``(image, mask)``, with ``num_classes`` and ``classes``) replace
    ``config.data``; ``encoder`` (an MAE in memory) is the pretrained encoder instead of loading
    ``config.init``, which then only names it in the records. Under ``torchrun`` every process calls this; only rank 0 writes files, holding the lock of
    ``config.out`` (:func:`maelens.io.folder_lock`) so that a second run into the same folder is refused. Raises
    :class:`~maelens.train.DivergenceError` on a NaN/inf training loss, after keeping the last good checkpoint.
    """
    info = init_distributed(config.device)
    try:
        with folder_lock(config.out_dir, "segmentation run") if info.is_main else nullcontext():
            return _Finetune(config, info, train_data, eval_data, encoder, on_epoch_end).run()
    finally:
        cleanup(info)


class _Finetune:
    """One fine-tuning run: set-up in ``__init__``, the epochs in :meth:`run`."""

    def __init__(self, config: SegmentConfig, info: DistInfo, train_data: Dataset | None,
                 eval_data: Dataset | None, encoder: MaskedAutoencoderViT | None,
                 on_epoch_end: Callable[[SegmentEpochEnd], None] | None = None):
        c = self.config = config
        self.on_epoch_end = on_epoch_end
        self.info = info
        self.out = config.out_dir
        resume_path = self._resume_path()
        if resume_path is None and (self.out / CHECKPOINT_NAME).exists():
            raise ConfigError(f"{self.out / CHECKPOINT_NAME} already exists: pass resume=auto to continue that "
                              f"run, or choose another out=FOLDER")
        if info.is_main:
            remove_stale_checkpoints(self.out)
        self.precision = resolve_precision(c.precision, info.device)
        if info.device.type == "cpu" and torch.get_num_threads() > usable_cpu_threads():
            torch.set_num_threads(usable_cpu_threads())

        # the encoder's source fixes the input size, the data fix the classes, then the segmenter is built
        pretrained = encoder if encoder is not None else self._pretrained()
        arch = pretrained.config if pretrained is not None else get_config(c.preset)
        self.train_data = self._data(train_data, arch, "train")
        self.eval_data = self._data(eval_data, arch, "test")
        self.num_classes = int(self.train_data.num_classes)
        if int(self.eval_data.num_classes) != self.num_classes:
            raise DataError(f"the training data has {self.num_classes} classes but the evaluation data "
                            f"{self.eval_data.num_classes}")
        seed_everything(c.seed)
        self.model = Segmenter(arch, self.num_classes, c.decoder)
        if pretrained is not None:
            self.model.encoder.load_state_dict(encoder_state(pretrained))
        self.init_source = "scratch" if pretrained is None else ("in-memory MAE" if c.from_scratch else c.init)
        set_fused_attention(self.model, info.device.type == "cuda")
        self.model.to(info.device)

        self.sampler = DistributedSampler(self.train_data, num_replicas=info.world_size, rank=info.rank,
                                          shuffle=True, seed=c.seed)
        self.loader = DataLoader(self.train_data, batch_size=c.batch_size, sampler=self.sampler,
                                 num_workers=c.num_workers, pin_memory=info.device.type == "cuda", drop_last=True)
        self.steps_per_epoch = len(self.loader)
        if self.steps_per_epoch == 0:
            raise ConfigError(f"no full batch fits in an epoch: {len(self.train_data)} training images for batch "
                              f"size {c.batch_size} x {info.world_size} process(es); lower batch_size")
        self.peak_lr = c.peak_lr(info.world_size)
        self.optimizer = build_finetune_optimizer(self.model, c.optimizer, lr=self.peak_lr,
                                                  weight_decay=c.weight_decay, layer_decay=c.layer_decay,
                                                  depth=arch.depth)
        self.start_epoch, self.global_step = 0, 0
        self.history: list[dict[str, Any]] = []
        self.final: dict[str, Any] = {}
        self.resumed_from: Path | None = None
        self.saved_rng: list[Any] | None = None
        seed_everything(derived_seed(c.seed, info.rank, 2))
        if resume_path is not None:
            self._load(resume_path)
        device_ids = [info.device.index] if info.device.type == "cuda" else None
        self.ddp = DistributedDataParallel(self.model, device_ids=device_ids) if info.distributed else None
        self.step_model = self.ddp if self.ddp is not None else self.model
        self.checkpoint_path: Path | None = self.resumed_from

    # ---- set-up -----------------------------------------------------------------------------
    def _resume_path(self) -> Path | None:
        if not self.config.resume:
            return None
        if self.config.resume == "auto":
            path = self.out / CHECKPOINT_NAME
            return path if path.is_file() else None
        return Path(self.config.resume)

    def _pretrained(self) -> MaskedAutoencoderViT | None:
        c = self.config
        if c.from_scratch:
            return None
        from ..checkpoint import load_checkpoint

        return load_checkpoint(c.init, "cpu", num_heads=c.num_heads, decoder_num_heads=c.decoder_num_heads).model

    def _data(self, given: Dataset | None, arch: ModelConfig, split: str) -> Dataset:
        c = self.config
        if given is None:
            from ..data.segmentation import load_segmentation

            limit = c.num_images if split == "train" else c.eval_images
            given = load_segmentation(c.data, image_size=arch.img_size, split=split, train=split == "train",
                                      num_classes=c.num_classes, limit=limit, seed=c.seed, mean=arch.norm_mean,
                                      std=arch.norm_std)
        if len(given) == 0:
            raise DataError(f"the {split} segmentation data holds no images")
        return given

    def _load(self, path: Path) -> None:
        loaded = load_segmenter(path)
        raw = loaded.raw
        if raw.get("optimizer") is None or loaded.epoch is None:
            raise CheckpointError(f"{path}: no optimizer state or epoch, so it cannot be resumed")
        if raw["segmenter"] != self.model.describe():
            raise CheckpointError(f"{path}: its segmenter differs from this run's (architecture, classes or "
                                  f"decoder); resume with the same settings")
        self.model.load_state_dict(loaded.model.state_dict())
        self.optimizer.load_state_dict(raw["optimizer"])
        extra = raw.get("extra") or {}
        self.start_epoch = loaded.epoch + 1
        self.global_step = int(extra.get("global_step", self.start_epoch * self.steps_per_epoch))
        self.history = list(extra.get("history", []))
        self.final = dict(extra.get("final", {}))
        states = extra.get("rank_states") or []
        self.saved_rng = states[self.info.rank] if len(states) == self.info.world_size else None
        if self.saved_rng is None:
            seed_everything(derived_seed(self.config.seed, self.info.rank, 2, self.start_epoch))
        self.resumed_from = path

    # ---- the epochs -------------------------------------------------------------------------
    def run(self) -> SegmentResult:
        c = self.config
        started = time.perf_counter()
        keep = self.start_epoch if self.resumed_from is not None else None
        with SegmentationLog(self.out, enabled=self.info.is_main, keep_before_epoch=keep) as log:
            log.log(kind="start", epoch=self.start_epoch, step=self.global_step, **self.precision.to_dict(),
                    device=str(self.info.device), threads=torch.get_num_threads(), init=self.init_source)
            if self.saved_rng is not None:
                from ..checkpoint import restore_rng_state

                restore_rng_state(self.saved_rng)
            for epoch in range(self.start_epoch, c.epochs):
                self.sampler.set_epoch(epoch)
                record = self._train_epoch(epoch, log)
                evaluation = self._evaluate()
                record.update(evaluation.to_dict())
                self.history.append(record)
                self.final = {**evaluation.to_dict(), "iou": evaluation.scores.iou.tolist(), "epoch": epoch}
                log.log(**record)
                if self.info.is_main:
                    self._report(epoch, record)
                self._save_checkpoint(epoch)
        summary = self._summary("completed", time.perf_counter() - started)
        if self.info.is_main:
            write_json(self.out / run_files.SUMMARY, summary)
        self.model.eval()
        return SegmentResult(self.checkpoint_path, self.history, self.out, self.model, self.final, summary)

    def _autocast(self) -> AbstractContextManager:
        return self.precision.autocast(self.info.device.type)

    def _train_epoch(self, epoch: int, log: SegmentationLog) -> dict[str, Any]:
        c = self.config
        self.model.train()
        losses: list[float] = []
        epoch_start = time.perf_counter()
        lr = self.peak_lr
        bar = tqdm(total=self.steps_per_epoch, desc=f"segment epoch {epoch} ({epoch + 1}/{c.epochs})", unit="step",
                   disable=c.quiet or not self.info.is_main, leave=False)
        with bar:
            for step, (imgs, masks) in enumerate(self.loader):
                # per-iteration lr, forward under the run's precision, float32 loss, step
                lr = lr_at(epoch + step / self.steps_per_epoch, peak_lr=self.peak_lr, epochs=c.epochs,
                           warmup_epochs=c.warmup_epochs, min_lr=c.min_lr, schedule=c.schedule)
                set_lr(self.optimizer, lr)
                with self._autocast():
                    logits = self.step_model(imgs.to(self.info.device, non_blocking=True))
                loss = pixel_cross_entropy(logits, masks.to(self.info.device, non_blocking=True))
                loss.backward()
                value = float(all_reduce_mean(loss.detach(), self.info))
                if not math.isfinite(value):
                    self._diverged(epoch, value)
                if c.clip_grad is not None:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.clip_grad)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.global_step += 1
                losses.append(value)
                log.log(kind="step", epoch=epoch, step=self.global_step, loss=value, lr=lr)
                bar.update(1)
                bar.set_postfix(loss=f"{value:.4f}", lr=f"{lr:.2e}")
        elapsed = time.perf_counter() - epoch_start
        return {"kind": "epoch", "epoch": epoch, "step": self.global_step, "train_loss": float(np.mean(losses)),
                "lr": lr, "images_per_s": c.effective_batch_size(self.info.world_size) * len(losses) / elapsed,
                "time_s": elapsed}

    def _evaluate(self) -> EvalResult:
        return evaluate_segmenter(self.model, self.eval_data, self.num_classes, batch_size=self.config.batch_size,
                                  device=self.info.device, rank=self.info.rank, world_size=self.info.world_size,
                                  autocast=self._autocast)

    def _diverged(self, epoch: int, loss: float) -> None:
        where = f"{self.checkpoint_path}" if self.checkpoint_path else "none was written yet"
        message = (f"the training loss became {loss} at epoch {epoch} (step {self.global_step + 1}); stopped. "
                   f"Last good checkpoint: {where}. Try a lower lr=... or blr=..., clip_grad=NORM, or precision=fp32")
        if self.info.is_main:
            write_json(self.out / run_files.SUMMARY, self._summary("diverged", None, message))
        raise DivergenceError(message)

    # ---- outputs ----------------------------------------------------------------------------
    def _report(self, epoch: int, record: dict[str, Any]) -> None:
        """Progress line, metrics.json and the epoch's event for ``on_epoch_end`` (rank 0)."""
        c = self.config
        if not c.quiet:
            tqdm.write(f"epoch {epoch} ({epoch + 1}/{c.epochs}): train loss {record['train_loss']:.4f}, eval loss "
                       f"{record['eval_loss']:.4f}, pixel accuracy {100 * record['pixel_accuracy']:.1f}%, "
                       f"mIoU {100 * record['miou']:.1f}%", file=sys.stderr)
        write_json(self.out / "metrics.json", {**self.final, "classes": self._classes(), "history": self.history})
        if self.on_epoch_end is not None:
            images, truth, predictions = self._figure_predictions() if c.figure_images else (None, None, None)
            self.on_epoch_end(SegmentEpochEnd(epoch=epoch, record=record, history=list(self.history), out_dir=self.out,
                                              title=self._title(), classes=self._classes(), images=images,
                                              truth=truth, predictions=predictions))

    def _classes(self) -> list[str]:
        return list(getattr(self.train_data, "classes", [str(k) for k in range(self.num_classes)]))

    def _title(self) -> str:
        return f"{self.model.config.name} encoder ({self.init_source}), {self.config.decoder} decoder"

    @torch.no_grad()
    def _figure_predictions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """RGB pixels, true and predicted label maps of the first ``figure_images`` evaluation images."""
        from ..data import denormalize

        count = min(self.config.figure_images, len(self.eval_data))
        imgs, masks = zip(*(self.eval_data[i] for i in range(count)))
        x = torch.stack(imgs)
        self.model.eval()
        pred = self.model(x.to(self.info.device)).argmax(1).cpu()
        rgb = denormalize(x, self.model.config.norm_mean, self.model.config.norm_std).permute(0, 2, 3, 1).numpy()
        return rgb, torch.stack(masks).numpy(), pred.numpy()

    def _save_checkpoint(self, epoch: int) -> None:
        from ..checkpoint import capture_rng_state

        state = capture_rng_state()
        if self.info.distributed:
            gathered: list[Any] = [None] * self.info.world_size
            dist.all_gather_object(gathered, state)
        else:
            gathered = [state]
        if not self.info.is_main:
            return
        extra = {"global_step": self.global_step, "history": self.history, "final": self.final,
                 "rank_states": gathered, "world_size": self.info.world_size, "init": self.init_source}
        path = self.out / CHECKPOINT_NAME
        try:
            save_segmenter(path, self.model, epoch=epoch, optimizer=self.optimizer, config=self.config.to_dict(),
                           extra=extra)
        except OSError as err:
            kept = "the previous one is kept" if self.checkpoint_path else "no checkpoint was written yet"
            raise CheckpointError(f"could not save {path} after epoch {epoch} ({err.strerror or err}); {kept}") from err
        self.checkpoint_path = path

    def _summary(self, status: str, time_s: float | None, message: str | None = None) -> dict[str, Any]:
        from .. import __version__

        describe = getattr(self.train_data, "describe", None)
        return {
            "status": status, "message": message, "out_dir": str(self.out),
            "checkpoint": str(self.checkpoint_path) if self.checkpoint_path else None,
            "resumed_from": str(self.resumed_from) if self.resumed_from else None,
            "init": self.init_source, "epochs_completed": len(self.history), "final": self.final,
            "history": self.history, "segmenter": self.model.describe(),
            "trainable_parameters": sum(p.numel() for p in self.model.parameters() if p.requires_grad),
            "config": self.config.to_dict(), "train_images": len(self.train_data),
            "eval_images": len(self.eval_data), "data": describe() if describe else None,
            "world_size": self.info.world_size, "device": str(self.info.device),
            "precision": self.precision.to_dict(), "threads": torch.get_num_threads(),
            "effective_batch_size": self.config.effective_batch_size(self.info.world_size),
            "peak_lr": self.peak_lr, "steps_per_epoch": self.steps_per_epoch, "time_s": time_s,
            "maelens_version": __version__,
        }

__all__ = ["CHECKPOINT_NAME", "SegmentResult", "finetune"]
