"""Fine-tuning a :class:`~.model.Segmenter` (IPOL sec. 6 "Pre-training": the segmentation study of Fig. 12)
as a task of the one run loop (:mod:`maelens.train.runloop`): the pretraining's machinery (AdamW/SGD with
per-iteration warm-up + cosine/linear lr, gradient accumulation, precision auto/fp32/bf16, DDP under
``torchrun``, JSONL/CSV logs, atomic checkpoints that resume exactly, ``keep_last``, a stop on a NaN loss,
``summary.json``, tqdm progress) with a per-pixel cross-entropy loss.

After every epoch the evaluation split gives the cross-entropy (the paper's Fig. 12 quantity), the pixel
accuracy and the mIoU (:mod:`.metrics`); they go to ``log.csv`` / ``log.jsonl`` and ``metrics.json``, and to
``on_epoch_end`` (a :class:`SegmentEpochEnd`), which the CLI and the experiments wire to the figures of
:func:`maelens.plots.segmentation.epoch_figures`. Epochs are numbered from 0; the checkpoint with
``epoch == k`` holds the state after epoch k.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from .. import run_files
from ..errors import CheckpointError, DataError
from ..io import write_json
from ..models.mae import MaskedAutoencoderViT, set_fused_attention
from ..models.presets import ModelConfig, get_config
from ..train.distributed import DistInfo
from ..train.runloop import BaseTask, RunLoop, Stored, run_task
from .config import SCRATCH, SegmentConfig
from .evaluation import evaluate_segmenter, pixel_cross_entropy
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
    ``config.init``, which then only names it in the records. Under ``torchrun`` every process calls this;
    only rank 0 writes files, holding the lock of ``config.out`` (:func:`maelens.train.runloop.run_task`) so
    that a second run into the same folder is refused. Raises :class:`~maelens.train.DivergenceError` on a
    NaN/inf training loss, after keeping the last good checkpoint; whatever ends the run, ``summary.json``
    says how.
    """
    task = SegmentTask(config, train_data, eval_data, encoder, on_epoch_end)
    loop = run_task(config, task)
    return SegmentResult(loop.checkpoint_path, loop.history, loop.out, loop.model, task.final, loop.summary)


class SegmentTask(BaseTask):
    """The segmentation fine-tuning for :class:`~maelens.train.runloop.RunLoop`: the encoder's source fixes
    the input size, the data fix the classes, then the segmenter is built; its loss is the per-pixel
    cross-entropy; every epoch ends with an evaluation (:func:`~.evaluation.evaluate_segmenter`)."""

    label = "segmentation run"
    identity_name = "segmenter (architecture, classes or decoder)"
    loss_key = "train_loss"
    log_class = SegmentationLog
    rng_stream = 2  # the streams of earlier versions' fine-tuning

    def __init__(self, config: SegmentConfig, train_data: Dataset | None, eval_data: Dataset | None,
                 encoder: MaskedAutoencoderViT | None, on_epoch_end: Callable[[SegmentEpochEnd], None] | None = None):
        self.config, self.given, self.encoder, self.on_epoch_end = config, (train_data, eval_data), encoder, on_epoch_end
        self.final: dict[str, Any] = {}

    # ---- data and model ---------------------------------------------------------------------
    def datasets(self, info: DistInfo) -> Dataset:
        c = self.config
        self.info = info
        self.pretrained = self.encoder if self.encoder is not None else self._pretrained()
        self.arch = self.pretrained.config if self.pretrained is not None else get_config(c.preset)
        self.train_data = self._data(self.given[0], self.arch, "train")
        self.eval_data = self._data(self.given[1], self.arch, "test")
        self.num_classes = int(self.train_data.num_classes)
        if int(self.eval_data.num_classes) != self.num_classes:
            raise DataError(f"the training data has {self.num_classes} classes but the evaluation data "
                            f"{self.eval_data.num_classes}")
        return self.train_data

    def build_model(self, info: DistInfo) -> nn.Module:
        c = self.config
        self.model = Segmenter(self.arch, self.num_classes, c.decoder)
        if self.pretrained is not None:
            self.model.encoder.load_state_dict(encoder_state(self.pretrained))
        self.init_source = ("scratch" if self.pretrained is None
                            else "in-memory MAE" if self.encoder is not None else c.init)
        set_fused_attention(self.model, info.device.type == "cuda")
        return self.model.to(info.device)

    def optimizer(self, model: nn.Module, lr: float) -> torch.optim.Optimizer:
        c = self.config
        return build_finetune_optimizer(model, c.optimizer, lr=lr, weight_decay=c.weight_decay,
                                        layer_decay=c.layer_decay, depth=self.arch.depth)

    def _pretrained(self) -> MaskedAutoencoderViT | None:
        c = self.config
        if c.init == SCRATCH:  # no checkpoint named (an encoder given in memory is used as it is)
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

    # ---- one micro-batch ---------------------------------------------------------------------
    def inputs(self, batch: Any, generator: torch.Generator, device: torch.device) -> Any:
        imgs, masks = batch
        return imgs.to(device, non_blocking=True), masks.to(device, non_blocking=True)

    def loss(self, model: nn.Module, inputs: Any, generator: torch.Generator) -> torch.Tensor:
        imgs, masks = inputs
        return pixel_cross_entropy(model(imgs), masks)

    # ---- per epoch ----------------------------------------------------------------------------
    def evaluate(self, model: nn.Module, epoch: int,
                 autocast: Callable[[], AbstractContextManager]) -> dict[str, Any]:
        info = self.info
        evaluation = evaluate_segmenter(model, self.eval_data, self.num_classes,
                                        batch_size=self.config.batch_size_for(len(self.eval_data)),
                                        device=info.device, rank=info.rank, world_size=info.world_size,
                                        autocast=autocast)
        self.final = {**evaluation.to_dict(), "iou": evaluation.scores.iou.tolist(), "epoch": epoch}
        return evaluation.to_dict()

    def progress(self, record: dict[str, Any]) -> str:
        return (f"train loss {record['train_loss']:.4f}, eval loss {record['eval_loss']:.4f}, pixel accuracy "
                f"{100 * record['pixel_accuracy']:.1f}%, mIoU {100 * record['miou']:.1f}%")

    def epoch_end(self, loop: RunLoop, epoch: int, record: dict[str, Any]) -> None:
        """``metrics.json`` and the epoch's event for ``on_epoch_end``."""
        write_json(loop.out / "metrics.json", {**self.final, "classes": self._classes(), "history": loop.history})
        if self.on_epoch_end is not None:
            images, truth, predictions = self._figure_predictions() if self.config.figure_images else (None,) * 3
            self.on_epoch_end(SegmentEpochEnd(epoch=epoch, record=record, history=list(loop.history), out_dir=loop.out,
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

    # ---- checkpoints and records --------------------------------------------------------------
    def identity(self, model: nn.Module) -> dict[str, Any]:
        return self.model.describe()

    def save(self, path: Path, model: nn.Module, *, epoch: int, optimizer: torch.optim.Optimizer,
             extra: dict[str, Any]) -> None:
        save_segmenter(path, model, epoch=epoch, optimizer=optimizer, config=self.config.to_dict(), extra=extra)

    def load(self, path: Path) -> Stored:
        loaded = load_segmenter(path)
        raw = loaded.raw
        if raw.get("optimizer") is None or loaded.epoch is None:
            raise CheckpointError(f"{path}: no optimizer state or epoch, so it cannot be resumed")
        return Stored(state=loaded.model.state_dict(), optimizer=raw["optimizer"], epoch=loaded.epoch,
                      extra=raw.get("extra") or {}, identity=raw["segmenter"], config=loaded.config)

    def extra_state(self) -> dict[str, Any]:
        return {"final": self.final, "init": self.init_source}

    def restore_extra(self, extra: dict[str, Any]) -> None:
        self.final = dict(extra.get("final", {}))

    def start_fields(self) -> dict[str, Any]:
        return {"init": self.init_source}

    def summary_fields(self, loop: RunLoop) -> dict[str, Any]:
        describe = getattr(self.train_data, "describe", None)
        return {"init": self.init_source, "final": self.final, "segmenter": self.model.describe(),
                "config": self.config.to_dict(), "train_images": len(self.train_data),
                "eval_images": len(self.eval_data), "data": describe() if describe else None}


__all__ = ["CHECKPOINT_NAME", "SegmentEpochEnd", "SegmentResult", "SegmentTask", "finetune"]
