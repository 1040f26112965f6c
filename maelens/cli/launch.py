"""Commands under ``torchrun``: join the process group that torchrun describes in the environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``; gloo on CPU, NCCL on CUDA), prepare on every rank together,
and leave the writing and printing to rank 0.

The analyses shard and reduce by themselves once a process group exists
(:mod:`maelens.analysis.distributed`); this module only sets it up for the command line. Without
torchrun (``WORLD_SIZE`` unset or 1) every function here is a no-op and torch is not imported.
"""

from __future__ import annotations

import argparse
import os
from typing import Callable, TypeVar

T = TypeVar("T")
_OWNED: list[bool] = []  # whether join() created the process group (then main() destroys it)

__all__ = ["is_main", "join", "launched", "leave", "prepare", "rank", "world_size"]


def launched() -> bool:
    """Whether torchrun started this process as one of several (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def world_size() -> int:
    """Processes torchrun started (1 alone)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def rank() -> int:
    """This process's rank as torchrun set it (0 alone)."""
    return int(os.environ.get("RANK", "0") or 0) if launched() else 0


def is_main() -> bool:
    """Whether this process writes and prints: rank 0, or the only process."""
    return rank() == 0


def join(args: argparse.Namespace) -> None:
    """Under torchrun, join its process group (once per process) and point ``args.device`` at this
    process's device: a bare ``cuda`` becomes ``cuda:LOCAL_RANK`` (modulo the GPUs visible)."""
    if not launched():
        return
    if rank() != 0:  # progress bars, tables and notes: rank 0's alone
        args.quiet = True
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    from ..analysis.distributed import timeout_seconds
    from .common import resolve_device

    device = torch.device(resolve_device(getattr(args, "device", None) or "cpu"))  # auto: CUDA when present
    args.device = str(device)
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % max(torch.cuda.device_count(), 1))
        torch.cuda.set_device(device)
        args.device = str(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                timeout=timedelta(seconds=timeout_seconds()))
        _OWNED.append(True)


def leave() -> None:
    """Destroy the process group if :func:`join` created it, every rank together: a rank that tears its gloo
    context down while another still writes could abort at exit ("terminate called without an active
    exception"), so the ranks meet at a barrier first (a rank that died is handled by torchrun, which ends
    the others)."""
    if _OWNED:
        import torch.distributed as dist

        if dist.is_initialized():
            try:
                dist.barrier()
            except Exception:  # noqa: BLE001 - a broken group is destroyed all the same
                pass
            dist.destroy_process_group()
        _OWNED.clear()


def prepare(args: argparse.Namespace, out: str | None, load: Callable[[], T]) -> T:
    """Join torchrun's process group when launched by it, then on every rank run the preflight checks
    (those of ``--out``, written by rank 0 alone, on rank 0 only) and ``load()`` (model, data), failing
    together: an error on any rank ends every rank with one :class:`~maelens.analysis.distributed.
    DistributedError` (printed once, by rank 0). ``out`` is as for :func:`~.common.preflight`."""
    from .common import preflight

    join(args)

    def work() -> T:
        preflight(args, out if is_main() else None)
        return load()

    if not launched():
        return work()
    from ..analysis.distributed import current, synchronised

    return synchronised(current(), work)
