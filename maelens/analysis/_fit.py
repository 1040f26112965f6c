"""Shared plumbing for the small torch estimators (probes, VAEs, parametric t-SNE): seeding that
leaves the global RNG alone, and a shuffled minibatch loop with a cosine learning-rate decay."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import ConfigError

OPTIMIZERS = ("adamw", "sgd")


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with torch's CPU RNG seeded, restoring the caller's RNG state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def make_optimizer(params: Sequence[nn.Parameter] | Iterator[nn.Parameter], name: str, lr: float,
                   weight_decay: float, momentum: float = 0.9) -> torch.optim.Optimizer:
    """AdamW or SGD with momentum (the probes of MAE/CAE use SGD/LARS; AdamW converges in fewer epochs)."""
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")


def fit_minibatches(module: nn.Module, loss_fn: Callable[..., torch.Tensor], tensors: Sequence[torch.Tensor], *,
                    epochs: int, batch_size: int, optimizer: torch.optim.Optimizer, seed: int,
                    desc: str, quiet: bool = True, groups: Sequence[torch.Tensor] | None = None) -> list[float]:
    """Train ``module`` for ``epochs`` passes over shuffled minibatches of ``tensors`` (all of length N);
    ``loss_fn(*batch)`` returns the mean loss of a batch. Returns the mean loss of each epoch.

    Each epoch cuts a fresh permutation into ceil(N / batch_size) near-equal batches, so no batch is
    left with a single sample (BatchNorm cannot train on one); or, with ``groups`` (index tensors),
    visits those fixed batches in a fresh order."""
    if epochs < 1 or batch_size < 1:
        raise ConfigError(f"{desc}: epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    n = int(tensors[0].shape[0])
    steps_per_epoch = len(groups) if groups is not None else -(-n // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs * steps_per_epoch))
    generator = torch.Generator().manual_seed(seed)
    curve: list[float] = []
    module.train()
    for _ in tqdm(range(epochs), desc=desc, disable=quiet, unit="epoch"):
        if groups is None:
            batches = torch.tensor_split(torch.randperm(n, generator=generator), steps_per_epoch)
        else:
            batches = [groups[i] for i in torch.randperm(len(groups), generator=generator).tolist()]
        total, count = 0.0, 0
        for idx in batches:
            batch = [t[idx.to(t.device)] for t in tensors]
            loss = loss_fn(*batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        curve.append(total / count)
    module.eval()
    return curve
