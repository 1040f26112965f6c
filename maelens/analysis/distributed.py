"""Dataset analyses over a ``torchrun`` process group: each process analyses a shard of the images and
the statistics are reduced exactly, so the result equals that of one process on the same images.

How it stays exact:

- **Shards are whole batches of the one-process run.** The images are cut into the batches a single
  process would make (``batch_size`` consecutive images, the last one shorter), and each rank takes a
  contiguous run of those batches (:func:`shard_batches`; ranks of lower index first, at most one batch
  more than another). No image is analysed twice, none is dropped, and nothing is padded: a rank
  with no batch contributes zeros. Because every batch holds the same images as in one process, a
  per-batch quantity (a minibatch CKA term) is the same, and so is each image's result.
- **Masks are replayed.** The analyses draw masks batch after batch from one seeded generator; a rank
  first draws (and discards) the masks of the batches before its shard (:func:`skip_masks`), so each
  of its images gets the mask it gets in one process. Drawing masks costs nothing next to a forward pass.
- **Sums are reduced as int64 or float64** (:func:`reduce_sums`): counts are then identical, float64
  sums equal up to the order of additions (about 1e-16 relative).
- **Per-image results are gathered in dataset order** (:func:`gather_rows`): each rank sends its rows
  with their dataset indices, and every rank gets all rows sorted by index (checked: each index once).
  Statistics that do not decompose (a median, a histogram whose range is the maximum) are computed
  from gathered per-image values.

Failures: each rank's local work runs under :func:`synchronised`, which catches an exception and
meets the other ranks at the next synchronisation point with an error flag (the message, gathered),
so every rank leaves together with one :class:`DistributedError` naming the failing rank, and no
rank waits in a collective for a rank that has failed. Collectives run on a gloo group (the default
one when it is gloo, else a gloo group made once next to NCCL) with a timeout
(``MAELENS_DIST_TIMEOUT`` seconds, default 1800), the last guard against a rank killed outright.

Nothing here imports torch until a process group exists: one process, as the ``distfit
--features-file`` command, never pays for it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

import numpy as np

from ..errors import MaelensError

__all__ = ["DistributedError", "Group", "Shard", "current", "gather_objects", "gather_rows", "quiet_here", "reduce_max",
           "reduce_sums", "broadcast", "check_failures", "share", "shard_batches", "shard_loader", "skip_masks", "synchronised", "timeout_seconds",
           "world_size"]

TIMEOUT_ENV = "MAELENS_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 1800.0
T = TypeVar("T")


class DistributedError(MaelensError):
    """A rank of a distributed analysis failed; raised on every rank, naming the failing rank."""


@dataclass(frozen=True)
class Group:
    """This process's place in the process group: ``rank`` of ``world_size``, and the gloo group
    (``handle``; None for the default group) that the analyses' collectives use."""

    rank: int
    world_size: int
    handle: Any = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that shows progress and writes."""
        return self.rank == 0


def timeout_seconds() -> float:
    """The collectives' timeout: ``MAELENS_DIST_TIMEOUT`` seconds when set (a positive number), else 1800."""
    text = os.environ.get(TIMEOUT_ENV)
    try:
        value = float(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        value = DEFAULT_TIMEOUT_S
    return value if value > 0 else DEFAULT_TIMEOUT_S


_GLOO: dict[int, Any] = {}


def current() -> Group | None:
    """The process group the analyses shard over: None unless ``torch.distributed`` is initialised with
    more than one process (torch is not imported to find out: no process group exists without it)."""
    dist_module = sys.modules.get("torch.distributed")
    if dist_module is None or not dist_module.is_available() or not dist_module.is_initialized():
        return None
    world = dist_module.get_world_size()
    if world < 2:
        return None
    return Group(rank=dist_module.get_rank(), world_size=world, handle=_gloo_group(dist_module))


def _gloo_group(dist_module: Any) -> Any:
    """None (the default group) when it runs gloo, else a gloo group over every rank, made once (a
    collective call: every rank reaches it at the start of the same analysis)."""
    if dist_module.get_backend() == "gloo":
        return None
    key = id(dist_module.group.WORLD)
    if key not in _GLOO:
        _GLOO[key] = dist_module.new_group(backend="gloo", timeout=timedelta(seconds=timeout_seconds()))
    return _GLOO[key]


def world_size(group: Group | None) -> int:
    """Processes taking part: 1 without a process group."""
    return 1 if group is None else group.world_size


def quiet_here(quiet: bool, group: Group | None) -> bool:
    """Whether this process hides its progress bar: when asked to, and on every rank but 0."""
    return quiet or (group is not None and not group.is_main)


# ---------------------------------------------------------------------------------------------- shards

@dataclass(frozen=True)
class Shard:
    """This rank's part of a dataset of ``num_images``: ``batches`` (lists of dataset indices, the
    batches a single process makes), ``skipped`` the sizes of the batches before them (whose masks
    are replayed), and ``indices`` all its images in order."""

    num_images: int
    batches: list[list[int]]
    skipped: list[int]

    @property
    def indices(self) -> np.ndarray:
        """(n,) int64 dataset indices of this rank's images, in order."""
        return np.asarray([i for batch in self.batches for i in batch], dtype=np.int64)


def shard_batches(num_images: int, batch_size: int, rank: int = 0, world: int = 1) -> Shard:
    """Rank ``rank`` of ``world``'s contiguous run of the batches of ``batch_size`` images that one
    process makes of ``num_images`` images: batches ``ceil(B r / W)`` to ``ceil(B (r + 1) / W)`` of the
    ``B`` batches, so rank 0 holds the first batch and no two shards differ by more than one batch."""
    if batch_size < 1:
        from ..errors import ConfigError

        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in [0, {world})")
    starts = list(range(0, num_images, batch_size))
    mine = share(len(starts), Group(rank, world) if world > 1 else None)
    lo, hi = mine.start, mine.stop
    batches = [list(range(s, min(num_images, s + batch_size))) for s in starts[lo:hi]]
    skipped = [min(num_images, s + batch_size) - s for s in starts[:lo]]
    return Shard(num_images=num_images, batches=batches, skipped=skipped)


def share(count: int, group: Group | None) -> range:
    """This rank's contiguous run of ``count`` work items (chunks of rows, samples), split as
    :func:`shard_batches` splits batches; all of them for one process."""
    rank, world = (0, 1) if group is None else (group.rank, group.world_size)
    return range(-(-count * rank // world), -(-count * (rank + 1) // world))


def gather_objects(group: Group | None, value: T) -> list[T]:
    """Every rank's ``value`` (picklable), in rank order; ``[value]`` for one process."""
    if group is None:
        return [value]
    import torch.distributed as dist

    out: list[Any] = [None] * group.world_size
    dist.all_gather_object(out, value, group=group.handle)
    return out


def shard_loader(dataset: Any, batch_size: int, num_workers: int, group: Group | None) -> tuple[Any, Shard]:
    """A DataLoader over this rank's shard of ``dataset`` (the whole of it, in order, for one process),
    and the :class:`Shard` it reads."""
    from torch.utils.data import DataLoader

    rank, world = (0, 1) if group is None else (group.rank, group.world_size)
    shard = shard_batches(len(dataset), batch_size, rank, world)
    if group is None:  # the loader of the one-process analyses, unchanged
        return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers), shard
    return DataLoader(dataset, batch_sampler=shard.batches, num_workers=num_workers), shard


def skip_masks(generator: Any, sizes: Iterable[int], masking: str, grid_size: Sequence[int],
               mask_ratio: float) -> None:
    """Advance ``generator`` past the masks of batches of ``sizes`` images, drawn as the model's
    ``encode`` draws them (one :func:`~maelens.models.masking.sample_noise` call per batch)."""
    from ..models.masking import sample_noise

    for size in sizes:
        sample_noise(masking, size, tuple(grid_size), mask_ratio, generator)


# ---------------------------------------------------------------------------------------------- failures

def _describe(err: BaseException) -> str:
    return str(err) if isinstance(err, MaelensError) else f"{err.__class__.__name__}: {err}"


def synchronised(group: Group | None, work: Callable[[], T]) -> T:
    """Run ``work()`` here, then meet the other ranks: when any rank raised, every rank raises a
    :class:`DistributedError` naming the first failing rank and its message (on the failing rank,
    chained to the original exception). Without a process group, just ``work()``."""
    if group is None:
        return work()
    result, error = None, None
    try:
        result = work()
    except Exception as err:  # noqa: BLE001 - any failure must reach the other ranks
        error = err
    check_failures(group, error)
    return result  # type: ignore[return-value]


def check_failures(group: Group, error: BaseException | None) -> None:
    """The synchronisation point of :func:`synchronised`: gather every rank's error (or None) and raise
    on all ranks if one failed."""
    import torch.distributed as dist

    messages: list[Any] = [None] * group.world_size
    dist.all_gather_object(messages, None if error is None else _describe(error), group=group.handle)
    failed = [(rank, message) for rank, message in enumerate(messages) if message is not None]
    if failed:
        rank, message = failed[0]
        others = f" (and {len(failed) - 1} other rank(s))" if len(failed) > 1 else ""
        raise DistributedError(f"rank {rank} of {group.world_size}{others}: {message}") from error


# ---------------------------------------------------------------------------------------------- reductions

def _as_tensor(value: Any) -> Any:
    """A CPU copy of ``value`` (numpy array, number or tensor) as a contiguous tensor (gloo reduces on CPU)."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True).contiguous()
    return torch.from_numpy(np.array(value, copy=True).reshape(np.shape(value)))


def reduce_sums(group: Group | None, values: Mapping[str, Any]) -> dict[str, Any]:
    """Sum each array (numpy or torch, int64 or float64) over all ranks; every rank gets the sums, in the
    types it passed (numpy or torch, on the tensor's device). A rank may lack some keys (it saw no batch
    and could not know their shapes): it adds zeros of the shape and type another rank declares."""
    if group is None:
        return dict(values)
    import torch
    import torch.distributed as dist

    local = {key: _as_tensor(value) for key, value in values.items()}
    for key, tensor in local.items():
        if tensor.dtype not in (torch.int64, torch.float64):
            raise TypeError(f"{key}: exact sums need int64 or float64 values, got {tensor.dtype}")
    specs: list[Any] = [None] * group.world_size
    dist.all_gather_object(specs, {k: (tuple(t.shape), str(t.dtype).split(".")[-1]) for k, t in local.items()},
                           group=group.handle)
    declared: dict[str, tuple] = {}
    for entry in specs:
        for key, spec in entry.items():
            declared.setdefault(key, spec)
    out: dict[str, Any] = {}
    for key in sorted(declared):
        shape, dtype = declared[key]
        tensor = local[key] if key in local else torch.zeros(shape, dtype=getattr(torch, dtype))
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=group.handle)
        value = values.get(key)
        out[key] = tensor.to(value.device) if isinstance(value, torch.Tensor) else tensor.numpy()
    return out


def reduce_max(group: Group | None, value: int) -> int:
    """The largest ``value`` over all ranks."""
    if group is None:
        return value
    import torch
    import torch.distributed as dist

    tensor = torch.tensor([value], dtype=torch.int64)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=group.handle)
    return int(tensor.item())


def broadcast(group: Group | None, value: T) -> T:
    """Rank 0's ``value`` on every rank (a picklable object)."""
    if group is None:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0, group=group.handle)  # the gloo group spans every rank in order
    return box[0]


def gather_rows(group: Group | None, rows: np.ndarray, indices: np.ndarray, num_images: int) -> np.ndarray:
    """Every rank's ``rows`` (n_r, ...) of dataset ``indices`` (n_r,), as one array of ``num_images`` rows
    in dataset order on every rank; checks that each index arrives exactly once."""
    if group is None:
        return rows
    import torch
    import torch.distributed as dist

    rows = np.ascontiguousarray(rows)
    if rows.shape[0] != len(indices):
        raise ValueError(f"{rows.shape[0]} rows for {len(indices)} indices")
    specs: list[Any] = [None] * group.world_size
    dist.all_gather_object(specs, (rows.shape, str(rows.dtype)), group=group.handle)
    counts = [spec[0][0] for spec in specs]
    # a rank with no rows cannot know their shape: take it from one that has some
    shape, dtype = next(((spec[0][1:], spec[1]) for spec in specs if spec[0][0] > 0), (rows.shape[1:], rows.dtype.str))
    wire = np.uint8 if np.dtype(dtype) == np.bool_ else np.dtype(dtype)
    longest = max(counts)
    padded = np.zeros((longest, *shape), dtype=wire)
    if rows.shape[0]:
        padded[:rows.shape[0]] = rows
    index_pad = np.full(longest, -1, dtype=np.int64)
    index_pad[:len(indices)] = indices
    parts = [torch.empty((longest, *shape), dtype=torch.from_numpy(padded).dtype) for _ in counts]
    index_parts = [torch.empty(longest, dtype=torch.int64) for _ in counts]
    dist.all_gather(parts, torch.from_numpy(padded), group=group.handle)
    dist.all_gather(index_parts, torch.from_numpy(index_pad), group=group.handle)
    gathered = np.concatenate([p[:n].numpy() for p, n in zip(parts, counts)]).astype(dtype, copy=False)
    order_of = np.concatenate([p[:n].numpy() for p, n in zip(index_parts, counts)])
    order = np.argsort(order_of, kind="stable")
    if not np.array_equal(order_of[order], np.arange(num_images)):
        raise DistributedError(f"the ranks' shards do not cover the {num_images} images exactly once")
    return gathered[order]
