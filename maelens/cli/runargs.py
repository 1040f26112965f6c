"""The options every training command shares (``train``, ``segment``: the fields of
:class:`~maelens.train.runconfig.RunConfig`), declared once, with the defaults read from the library's run
configuration, so the parser never repeats a library default. Torch-free: the run configurations are."""

from __future__ import annotations

import argparse
from dataclasses import MISSING, fields
from typing import Any

from ..choices import PRECISIONS, SCHEDULES
from .common import non_negative_float, non_negative_int, positive_float, positive_int


def config_defaults(config_type: type) -> dict[str, Any]:
    """Each field of the dataclass ``config_type`` and its default (fields without one are left out)."""
    return {f.name: f.default for f in fields(config_type) if f.default is not MISSING}


def add_run_loop_args(p: argparse.ArgumentParser, config_type: type, *, unset: tuple[str, ...] = (),
                      help: dict[str, str] | None = None) -> None:
    """Length, optimisation, numerics, resume and checkpoint options of a training command. Defaults come from
    ``config_type``; the fields in ``unset`` default to None (the command fills them in, e.g. from a preset's
    recipe); ``help`` replaces an option's default help text (keyed by field name)."""
    d = {k: (None if k in unset else v) for k, v in config_defaults(config_type).items()}
    text = {
        "epochs": "passes over the data (default: %(default)s)",
        "accum_iter": "micro-batches per optimizer step; effective batch = batch size x K x processes "
                      "(default: %(default)s)",
        "blr": "base lr: lr = blr * effective batch / 256 (default: %(default)s)",
        "lr": "absolute lr (overrides --blr)",
        "min_lr": "lr at the end of the decay (default: %(default)s)",
        "weight_decay": "weight decay (default: %(default)s)",
        "warmup_epochs": "linear warm-up length in epochs, fractional allowed (default: %(default)s)",
        "schedule": "decay after warm-up (default: %(default)s)",
        "precision": "auto: bfloat16 autocast where the device computes it natively (CUDA with bf16, CPUs with "
                     "AVX512-BF16 or AMX), else float32; loss and optimizer state stay float32 (default: %(default)s)",
        **(help or {}),
    }
    p.add_argument("--epochs", type=positive_int, default=d["epochs"], metavar="N", help=text["epochs"])
    p.add_argument("--accum-iter", type=positive_int, default=d["accum_iter"], metavar="K", help=text["accum_iter"])
    p.add_argument("--blr", type=positive_float, default=d["blr"], help=text["blr"])
    p.add_argument("--lr", type=positive_float, default=d["lr"], help=text["lr"])
    p.add_argument("--min-lr", type=non_negative_float, default=d["min_lr"], help=text["min_lr"])
    p.add_argument("--weight-decay", type=non_negative_float, default=d["weight_decay"], metavar="WD",
                   help=text["weight_decay"])
    p.add_argument("--warmup-epochs", type=non_negative_float, default=d["warmup_epochs"], metavar="E",
                   help=text["warmup_epochs"])
    p.add_argument("--schedule", default=d["schedule"], choices=SCHEDULES, help=text["schedule"])
    p.add_argument("--clip-grad", type=positive_float, default=d["clip_grad"], metavar="NORM",
                   help="clip the gradient norm")
    p.add_argument("--precision", default=d["precision"], choices=PRECISIONS, help=text["precision"])
    p.add_argument("--bf16", dest="precision", action="store_const", const="bf16", help="same as --precision bf16")
    p.add_argument("--resume", default=d["resume"], metavar="auto|PATH",
                   help="continue from a checkpoint (auto: OUT/checkpoint.pt if there is one); the settings must be "
                        "the stored run's, except more --epochs, --device and --precision")
    p.add_argument("--save-every", type=positive_int, default=d["save_every"], metavar="N",
                   help="checkpoint every N epochs (and the last)")
    p.add_argument("--keep-last", type=non_negative_int, default=d["keep_last"], metavar="K",
                   help="also keep the last K numbered checkpoints")


def run_loop_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :func:`add_run_loop_args` values as keyword arguments of a run configuration."""
    names = ("epochs", "accum_iter", "blr", "lr", "min_lr", "weight_decay", "warmup_epochs", "schedule", "clip_grad",
             "precision", "resume", "save_every", "keep_last")
    return {name: getattr(args, name) for name in names}


__all__ = ["add_run_loop_args", "config_defaults", "run_loop_options"]
