"""One training loop for every task: MAE and SimCLR pretraining, the segmentation fine-tuning, and what comes next.

In the spirit of lightning's ``LightningModule`` + ``Trainer`` and torchtune's recipes, kept small: a
:class:`Task` says what is trained (the model, the datasets, the optimizer, how a loader batch becomes the
model's input and a loss, the per-epoch evaluation and event, the checkpoint format and what identifies a run);
:class:`RunLoop` owns everything else, once: stale files, precision, threads, seeds, DDP, the sampler, gradient
accumulation, clipping, the lr schedule, the NaN stop, per-rank RNG states, resume, ``keep_last``, logs,
``summary.json`` and the epoch event. :func:`run_task` adds the process group and the folder lock.

Epochs are numbered from 0 as in the official MAE code: ``checkpoint.pt`` with ``epoch == k`` holds the state
after epoch k, and a resumed run starts at epoch k + 1. Every run that got past its set-up ends with a
``summary.json`` whose ``status`` says how it ended: ``completed``, ``interrupted`` (Ctrl-C or SIGTERM),
``diverged`` (a NaN or infinite loss) or ``failed`` (with the error's message).
"""

from __future__ import annotations

import math
import random
import re
import shutil
import signal
import sys
import threading
import time
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from .. import run_files
from .._version import __version__
from ..choices import DEFAULT_BATCH_SIZE, DEFAULT_WARMUP_EPOCHS
from ..errors import CheckpointError, ConfigError, MaelensError, OutputError
from ..io import atomic_path, folder_lock, write_json
from .distributed import DistInfo, all_reduce_mean, cleanup, init_distributed
from .precision import resolve_precision, usable_cpu_threads
from .resume import compare_settings
from .runconfig import RunConfig
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


class RunInterrupted(KeyboardInterrupt):
    """The run received SIGTERM; raised where the signal arrives so the run folder still gets its summary."""


@dataclass
class Stored:
    """What a task reads back from a checkpoint to resume: the model's ``state``, the ``optimizer`` state, the
    ``epoch`` it holds, the loop's ``extra`` (step, history, RNG states, the task's own), the ``identity`` of
    the run (compared with :meth:`Task.identity`) and the run's ``config`` dict as stored."""

    state: dict[str, Any]
    optimizer: dict[str, Any] | None
    epoch: int | None
    extra: dict[str, Any]
    identity: dict[str, Any]
    config: dict[str, Any]


@dataclass(frozen=True)
class StepEnd:
    """What a per-step hook (:attr:`RunLoop.step_hooks`) receives after each optimizer step."""

    loop: "RunLoop"
    epoch: int
    step: int
    loss: float
    lr: float
    time_s: float


class Task(Protocol):
    """What a training task tells :class:`RunLoop`; :class:`BaseTask` gives the optional parts.

    Called in this order: :meth:`datasets`, :meth:`build_model` (after the run is seeded), :meth:`optimizer`;
    then per micro-batch :meth:`inputs` (outside autocast) and :meth:`loss` (under autocast); per epoch
    :meth:`evaluate` (every process) and :meth:`epoch_end` (the process that writes files).
    """

    #: the run's kind, in the lock's message ("training run", "segmentation run")
    label: str
    #: what :meth:`identity` describes, in the resume refusal ("model", "segmenter")
    identity_name: str
    #: the key of the epoch record's mean training loss
    loss_key: str
    #: the logs of the run (columns of log.csv)
    log_class: type[RunLog]
    #: selects the run's random streams (kept per task so that runs reproduce those of earlier versions)
    rng_stream: int
    #: the fewest images a micro-batch may hold over all processes (2 for a contrastive loss), and why
    min_global_batch: int
    min_global_batch_reason: str

    def datasets(self, info: DistInfo) -> Dataset: ...
    def device_loader(self, dataset: Dataset, sampler: Any, batch_size: int, device: torch.device,
                      generator: torch.Generator) -> Any: ...
    def build_model(self, info: DistInfo) -> nn.Module: ...
    def optimizer(self, model: nn.Module, lr: float) -> torch.optim.Optimizer: ...
    def inputs(self, batch: Any, generator: torch.Generator, device: torch.device) -> Any: ...
    def loss(self, model: nn.Module, inputs: Any, generator: torch.Generator) -> torch.Tensor: ...
    def check_nonfinite(self, batches: list[Any]) -> None: ...
    def evaluate(self, model: nn.Module, epoch: int,
                 autocast: Callable[[], AbstractContextManager]) -> dict[str, Any]: ...
    def epoch_end(self, loop: "RunLoop", epoch: int, record: dict[str, Any]) -> None: ...
    def progress(self, record: dict[str, Any]) -> str: ...
    def identity(self, model: nn.Module) -> dict[str, Any]: ...
    def save(self, path: Path, model: nn.Module, *, epoch: int, optimizer: torch.optim.Optimizer,
             extra: dict[str, Any]) -> None: ...
    def load(self, path: Path) -> Stored: ...
    def extra_state(self) -> dict[str, Any]: ...
    def restore_extra(self, extra: dict[str, Any]) -> None: ...
    def start_fields(self) -> dict[str, Any]: ...
    def summary_fields(self, loop: "RunLoop") -> dict[str, Any]: ...


class BaseTask:
    """The optional parts of a :class:`Task`: no evaluation, no extra state, nothing said about NaN inputs."""

    label = "training run"
    identity_name = "model"
    loss_key = "loss"
    log_class = RunLog
    rng_stream = 0
    min_global_batch = 1
    min_global_batch_reason = ""

    def check_nonfinite(self, batches: list[Any]) -> None:
        """Raise when a non-finite loss comes from the data rather than the optimisation (default: never)."""

    def device_loader(self, dataset: Dataset, sampler: Any, batch_size: int, device: torch.device,
                      generator: torch.Generator) -> Any:
        """Batches built on the training device without a DataLoader (same images, order and ``drop_last`` as
        ``DataLoader(dataset, batch_size, sampler=sampler, drop_last=True)``), drawing any augmentation from
        ``generator``; None (the default): a DataLoader."""
        return None

    def evaluate(self, model: nn.Module, epoch: int,
                 autocast: Callable[[], AbstractContextManager]) -> dict[str, Any]:
        return {}

    def extra_state(self) -> dict[str, Any]:
        return {}

    def restore_extra(self, extra: dict[str, Any]) -> None:
        pass

    def start_fields(self) -> dict[str, Any]:
        return {}


def run_task(config: RunConfig, task: Task, notify: Callable[[str], None] | None = None,
             step_hooks: list[Callable[[StepEnd], None]] | None = None) -> "RunLoop":
    """Run ``task`` as ``config`` says and return the finished :class:`RunLoop`.

    Under ``torchrun`` every process calls this; only rank 0 writes files, and it holds the lock of
    ``config.out`` for the whole run (:func:`maelens.io.folder_lock`): a second run started into the same
    folder is refused with an :class:`~maelens.errors.OutputError` naming the holder's pid.
    """
    info = init_distributed(config.device)
    try:
        with folder_lock(config.out_dir, task.label) if info.is_main else nullcontext():
            loop = RunLoop(config, task, info, notify)
            loop.step_hooks.extend(step_hooks or [])
            loop.run()
            return loop
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


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def derived_seed(*parts: int) -> int:
    """An independent 63-bit seed for each (seed, rank, purpose, ...) combination."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint64)[0]) >> 1


def accumulate(loss_of: Callable[[Any], torch.Tensor], micro_batches: list[Any], *,
               prepare: Callable[[Any], Any] = lambda batch: batch, device: torch.device | str = "cpu",
               ddp: DistributedDataParallel | None = None,
               autocast: Callable[[], AbstractContextManager] = nullcontext) -> torch.Tensor:
    """Gradients of one optimizer step (MAE's ``accum_iter``): each micro-batch is turned into the model's
    input by ``prepare`` (outside autocast), its loss ``loss_of(input)`` (under ``autocast``) divided by the
    number of micro-batches is back-propagated, so the summed gradients equal those of one batch holding them
    all, and DDP all-reduces only on the last. Returns the mean loss (detached scalar)."""
    total = torch.zeros((), device=device)
    for k, batch in enumerate(micro_batches):
        last = k == len(micro_batches) - 1
        inputs = prepare(batch)
        with ddp.no_sync() if ddp is not None and not last else nullcontext():
            with autocast():
                loss = loss_of(inputs)
            (loss / len(micro_batches)).backward()
        total += loss.detach().float()
    return total / len(micro_batches)


def _print_note(message: str) -> None:
    """The default ``notify`` (unless ``quiet``): the message on stderr."""
    tqdm.write(f"note: {message}", file=sys.stderr)


@contextmanager
def _sigterm_interrupts(enabled: bool) -> Iterator[None]:
    """Within the block SIGTERM raises :class:`RunInterrupted` (in the main thread only: elsewhere Python
    cannot install handlers), so a terminated run still writes its summary; the old handler is put back."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise RunInterrupted(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class RunLoop:
    """One training run of a :class:`Task`: set-up in ``__init__``, the epochs in :meth:`run`.

    ``step_hooks`` are called with a :class:`StepEnd` after every optimizer step (a thread governor, a
    profiler); :meth:`_step_batches` and :meth:`_device_inputs` are the one place where a training batch is
    drawn from the loader and turned into the model's input on the training device.
    """

    def __init__(self, config: RunConfig, task: Task, info: DistInfo, notify: Callable[[str], None] | None = None):
        self.config, self.task, self.info = config, task, info
        self.notify = notify if notify is not None else (_print_note if not config.quiet else lambda message: None)
        self.step_hooks: list[Callable[[StepEnd], None]] = []
        self.out = config.out_dir
        resume_path = self._resume_path()
        if resume_path is None and (self.out / CHECKPOINT_NAME).exists():
            raise ConfigError(f"{self.out / CHECKPOINT_NAME} already exists: pass resume=auto to continue that "
                              f"run, or choose another out=FOLDER")
        if info.is_main:
            remove_stale_checkpoints(self.out)
        self.precision = resolve_precision(config.precision, info.device)
        if info.device.type == "cpu" and torch.get_num_threads() > usable_cpu_threads():
            torch.set_num_threads(usable_cpu_threads())  # never more threads than cores we may run on
        # n or n - 1 CPU threads, whichever trains faster beside the machine's other load (issue 23)
        self.governor = ThreadGovernor(torch.get_num_threads(), enabled=info.device.type == "cpu" and not
                                       info.distributed, notify=self.notify if info.is_main else None)
        self.step_hooks.append(lambda end: self.governor.step_done(end.time_s))
        self.dataset = task.datasets(info)
        seed_everything(config.seed)
        self.model = task.build_model(info)
        self.generator = torch.Generator()  # masks and on-device augmentation draw from it; saved per rank
        self._build_loader()
        self.peak_lr = config.peak_lr(info.world_size, self.batch_size)
        self.optimizer = task.optimizer(self.model, self.peak_lr)
        self.start_epoch, self.global_step = 0, 0
        self.history: list[dict[str, Any]] = []
        self.resumed_from: Path | None = None
        self.saved_rng: dict[str, Any] | None = None
        self.changed: list[str] = []
        self._seed_streams()
        if resume_path is not None:
            self._load(resume_path)
        device_ids = [info.device.index] if info.device.type == "cuda" else None
        self.ddp = DistributedDataParallel(self.model, device_ids=device_ids) if info.distributed else None
        wrapped = self.ddp if self.ddp is not None else self.model
        self.step_model = torch.compile(wrapped) if config.compile else wrapped
        self.checkpoint_path: Path | None = self.resumed_from

    # ---- set-up -----------------------------------------------------------------------------
    def _resume_path(self) -> Path | None:
        resume = self.config.resume
        if not resume:
            return None
        if resume == "auto":
            path = self.out / CHECKPOINT_NAME
            return path if path.is_file() else None
        return Path(resume)

    def _build_loader(self) -> None:
        """The sampler (every process its share, reshuffled per epoch), the batch size fitted to the data,
        the loader and the optimizer steps per epoch."""
        c, info = self.config, self.info
        self.sampler = DistributedSampler(self.dataset, num_replicas=info.world_size, rank=info.rank,
                                          shuffle=True, seed=c.seed)
        self.batch_size = c.batch_size_for(len(self.dataset), info.world_size)
        self.notes = self._adapted_defaults()
        self.loader = self.task.device_loader(self.dataset, self.sampler, self.batch_size, info.device, self.generator)
        if self.loader is None:
            self.loader = DataLoader(self.dataset, batch_size=self.batch_size, sampler=self.sampler,
                                     num_workers=c.num_workers, pin_memory=info.device.type == "cuda", drop_last=True)
        self.steps_per_epoch = len(self.loader) // c.accum_iter
        global_batch = self.batch_size * info.world_size
        if global_batch < self.task.min_global_batch:
            raise ConfigError(
                f"{self.task.min_global_batch_reason} needs at least {self.task.min_global_batch} images per batch "
                f"over all processes, got batch_size={self.batch_size} x {info.world_size} process(es): raise "
                f"batch_size" + ("" if c.batch_size is not None else " or use more images"))
        if self.steps_per_epoch == 0:
            raise ConfigError(
                f"no full optimizer step fits in an epoch: no full batch of {self.batch_size} images x accum_iter "
                f"{c.accum_iter} x {info.world_size} process(es) in {len(self.dataset)} training images; lower "
                f"batch_size or accum_iter, or use more images")

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

    def _seed_streams(self, *epoch: int) -> None:
        """This process's own random streams: the global generators and the run's generator (masks,
        augmentations), independent per rank; a resume into another number of processes restarts them
        per ``epoch``."""
        c, rank, stream = self.config, self.info.rank, self.task.rng_stream
        seed_everything(derived_seed(c.seed, rank, stream, *epoch))
        self.generator.manual_seed(derived_seed(c.seed, rank, stream + 1, *epoch))

    def _load(self, path: Path) -> None:
        stored = self.task.load(path)
        if stored.optimizer is None or stored.epoch is None:
            raise CheckpointError(f"{path}: not a maelens training checkpoint (no optimizer state or epoch), "
                                  f"so it cannot be resumed")
        wanted = self.task.identity(self.model)
        differ = sorted(k for k in set(wanted) | set(stored.identity) if stored.identity.get(k) != wanted.get(k))
        if differ:
            raise CheckpointError(f"{path}: its {self.task.identity_name} differs from this run's in "
                                  f"{', '.join(differ)}; resume with the same settings")
        self.changed = compare_settings(stored.config, self.config, path)
        self.model.load_state_dict(stored.state)
        self.optimizer.load_state_dict(stored.optimizer)
        extra = stored.extra
        self.start_epoch = int(stored.epoch) + 1
        self.global_step = int(extra.get("global_step", self.start_epoch * self.steps_per_epoch))
        self.history = list(extra.get("history", []))
        self.task.restore_extra(extra)
        states = extra.get("rank_states") or []
        if len(states) == self.info.world_size:
            self.saved_rng = states[self.info.rank]
        else:  # another number of processes: the saved per-rank streams do not map, so seed afresh
            self._seed_streams(self.start_epoch)
        self.resumed_from = path

    # ---- the epochs -------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Train the remaining epochs; write and return the summary. Whatever ends the run, ``summary.json``
        says how (see the module's docstring) before the exception goes on."""
        started = time.perf_counter()
        keep = self.start_epoch if self.resumed_from is not None else None
        with self.task.log_class(self.out, enabled=self.info.is_main, keep_before_epoch=keep) as log:
            try:
                with _sigterm_interrupts(self.info.is_main or not self.info.distributed):
                    self._start(log)
                    for epoch in range(self.start_epoch, self.config.epochs):
                        self._epoch(epoch, log)
            except DivergenceError:
                raise  # its summary is written where the loss is seen
            except KeyboardInterrupt:
                self._write_summary("interrupted", time.perf_counter() - started,
                                    "stopped by SIGTERM" if isinstance(sys.exc_info()[1], RunInterrupted)
                                    else "stopped by Ctrl-C")
                raise
            except BaseException as err:
                self._write_summary("failed", time.perf_counter() - started, _one_line(err))
                raise
            finally:
                self.governor.restore()  # the thread count the run started with, for what follows
        self.summary = self._write_summary("completed", time.perf_counter() - started)
        self.model.eval()
        return self.summary

    def _start(self, log: RunLog) -> None:
        """The start record, the notes and the precision line; the saved random streams put back."""
        log.log(csv_row=False, kind="start", epoch=self.start_epoch, step=self.global_step,
                **self.precision.to_dict(), device=str(self.info.device), threads=torch.get_num_threads(),
                **self.task.start_fields(), **({"changed": self.changed} if self.changed else {}))
        if self.info.is_main:
            for message in self.notes + self.changed:
                self.notify(message)
            if not self.config.quiet:
                tqdm.write(f"precision: {self.precision.name} ({self.precision.reason}); "
                           f"{torch.get_num_threads()} CPU thread(s)", file=sys.stderr)
        if self.saved_rng is not None:
            self._restore_states(self.saved_rng)

    def _epoch(self, epoch: int, log: RunLog) -> None:
        """Train one epoch, evaluate, log, report and checkpoint."""
        c = self.config
        self.sampler.set_epoch(epoch)
        record = self._train_epoch(epoch, log)
        record.update(self.task.evaluate(self.model, epoch, self._autocast))
        self.history.append(record)
        log.log(**record)
        if self.info.is_main:
            if not c.quiet:
                tqdm.write(f"epoch {epoch} ({epoch + 1}/{c.epochs}): {self.task.progress(record)}", file=sys.stderr)
            self.task.epoch_end(self, epoch, record)
        if (epoch + 1) % c.save_every == 0 or epoch + 1 == c.epochs:
            self._save_checkpoint(epoch)

    def _autocast(self) -> AbstractContextManager:
        return self.precision.autocast(self.info.device.type)

    def _step_batches(self, loader: Iterator[Any]) -> list[Any]:
        """The ``accum_iter`` loader batches of the next optimizer step, as the loader gives them."""
        return [next(loader) for _ in range(self.config.accum_iter)]

    def _device_inputs(self, batch: Any) -> Any:
        """One loader batch as the model's input on the training device (outside autocast, no gradients
        needed): moved, and augmented where the task augments there, with the run's generator."""
        return self.task.inputs(batch, self.generator, self.info.device)

    def _train_epoch(self, epoch: int, log: RunLog) -> dict[str, Any]:
        c = self.config
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loader = iter(self.loader)
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
                loss = self._optimizer_step(epoch, self._step_batches(loader))
                losses.append(loss)
                now = time.perf_counter()
                log.log(kind="step", epoch=epoch, step=self.global_step, loss=loss, lr=lr,
                        images_per_s=images_per_step / (now - step_start), time_s=now - epoch_start)
                for hook in self.step_hooks:
                    hook(StepEnd(self, epoch, self.global_step, loss, lr, now - step_start))
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
        elapsed = time.perf_counter() - epoch_start
        return {"kind": "epoch", "epoch": epoch, "step": self.global_step, self.task.loss_key: float(np.mean(losses)),
                "lr": lr, "images_per_s": images_per_step * len(losses) / elapsed, "time_s": elapsed}

    def _optimizer_step(self, epoch: int, batches: list[Any]) -> float:
        """Accumulated gradients of ``batches``, the NaN stop, clipping and the step; the loss averaged over
        micro-batches and processes."""
        task, generator = self.task, self.generator
        loss = accumulate(lambda inputs: task.loss(self.step_model, inputs, generator), batches,
                          prepare=self._device_inputs, device=self.info.device, ddp=self.ddp,
                          autocast=self._autocast)
        value = float(all_reduce_mean(loss, self.info))
        if not math.isfinite(value):
            task.check_nonfinite(batches)  # bad images, not a bad learning rate
            self._diverged(epoch, value)
        if self.config.clip_grad is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_grad)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.global_step += 1
        return value

    def _diverged(self, epoch: int, loss: float) -> None:
        where = f"{self.checkpoint_path}" if self.checkpoint_path else "none was written yet"
        message = (f"the training loss became {loss} at epoch {epoch} (step {self.global_step + 1}); stopped. "
                   f"Last good checkpoint: {where}. Try a lower lr=... or blr=..., clip_grad=NORM, or precision=fp32")
        self._write_summary("diverged", None, message)
        raise DivergenceError(message)

    # ---- outputs ----------------------------------------------------------------------------
    def _capture_states(self) -> dict[str, Any]:
        from ..checkpoint.rng import capture_rng_state

        return {"rng": capture_rng_state(), "generator": self.generator.get_state()}

    def _restore_states(self, states: dict[str, Any]) -> None:
        """Put back one rank's streams: ``{"rng", "generator"}``, or as earlier versions stored them
        (``mask_generator`` for pretraining; the bare RNG state, without a generator, for segmentation)."""
        from ..checkpoint.rng import restore_rng_state

        if "rng" not in states:
            restore_rng_state(states)
            return
        restore_rng_state(states["rng"])
        generator = states.get("generator", states.get("mask_generator"))
        if generator is not None:
            self.generator.set_state(generator)

    def _save_checkpoint(self, epoch: int) -> None:
        """Atomic ``checkpoint.pt`` (and a numbered copy when ``keep_last``), with every rank's RNG states."""
        states = self._capture_states()
        if self.info.distributed:
            gathered: list[Any] = [None] * self.info.world_size
            dist.all_gather_object(gathered, states)
        else:
            gathered = [states]
        if not self.info.is_main:
            return
        extra = {"global_step": self.global_step, "history": self.history, "rank_states": gathered,
                 "world_size": self.info.world_size, **self.task.extra_state()}
        path = self.out / CHECKPOINT_NAME
        try:
            self.task.save(path, self.model, epoch=epoch, optimizer=self.optimizer, extra=extra)
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

    def _write_summary(self, status: str, time_s: float | None, message: str | None = None) -> dict[str, Any]:
        """The summary (written to ``summary.json`` by the process that writes files) and return it. A summary
        that cannot be written when the run already failed does not hide the first error."""
        summary = self._summary(status, time_s, message)
        if self.info.is_main:
            try:
                write_json(self.out / run_files.SUMMARY, summary)
            except (OSError, MaelensError):
                if status == "completed":
                    raise
        return summary

    def _summary(self, status: str, time_s: float | None, message: str | None = None) -> dict[str, Any]:
        c, info = self.config, self.info
        return {
            "status": status, "message": message, "out_dir": str(self.out),
            "checkpoint": str(self.checkpoint_path) if self.checkpoint_path else None,
            "resumed_from": str(self.resumed_from) if self.resumed_from else None,
            "epochs_completed": len(self.history), "history": self.history,
            **self.task.summary_fields(self),
            "trainable_parameters": sum(p.numel() for p in self.model.parameters() if p.requires_grad),
            "world_size": info.world_size, "device": str(info.device), "precision": self.precision.to_dict(),
            "threads": torch.get_num_threads(), "batch_size": self.batch_size,
            "effective_batch_size": c.effective_batch_size(info.world_size, self.batch_size),
            "warmup_epochs": c.effective_warmup_epochs, "notes": self.notes, "changed": self.changed,
            "peak_lr": self.peak_lr, "steps_per_epoch": self.steps_per_epoch, "time_s": time_s,
            "maelens_version": __version__,
        }


def _one_line(err: BaseException) -> str:
    """An exception as one line for the summary: its type and its first line."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


__all__ = ["BaseTask", "CHECKPOINT_NAME", "DivergenceError", "NUMBERED", "RunInterrupted", "RunLoop",
           "STALE_CHECKPOINT", "StepEnd", "Stored", "Task", "accumulate", "derived_seed", "remove_stale_checkpoints",
           "run_task", "seed_everything"]
