"""Process-group set-up for ``torchrun``: NCCL on GPUs, gloo on CPU; a single process needs nothing."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size`` processes, on ``device``."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0, the only process that writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA when available else CPU; a bare ``cuda`` becomes this process's GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"device={name} is not a torch device (expected cpu, cuda, cuda:N or auto)") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device={name} asked for CUDA but no GPU is available here; use device=cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    return device


def init_distributed(device_name: str = "auto") -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment (WORLD_SIZE > 1)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    owns_group = world_size > 1 and not dist.is_initialized()
    if owns_group:
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size,
                                device_id=device if device.type == "cuda" else None)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=device, owns_group=owns_group)


def cleanup(info: DistInfo) -> None:
    """Leave the process group if :func:`init_distributed` created it."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of ``value`` over all processes (the value itself in a single process)."""
    if not info.distributed:
        return value
    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / info.world_size


class _GatherRows(torch.autograd.Function):
    """All processes' rows (same count each), in rank order; the backward pass sums every process's gradient
    of the gathered rows and returns this process's slice, so gradients reach the rows' owners."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        parts = [torch.empty_like(rows) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, rows.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        n = grad.shape[0] // dist.get_world_size()
        rank = dist.get_rank()
        return grad[rank * n:(rank + 1) * n]


def gather_rows(rows: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """(world_size * N, ...) rows of every process, differentiable; ``rows`` itself in a single process."""
    if not info.distributed:
        return rows
    return _GatherRows.apply(rows)

__all__ = ["DistInfo", "all_reduce_mean", "cleanup", "gather_rows", "init_distributed", "resolve_device"]
