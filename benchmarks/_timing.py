"""Shared timing loop of the benchmarks: runs timed alternately, wall and process CPU time."""

from __future__ import annotations

import time
from typing import Callable


def interleaved(runs: dict[str, Callable[[], object]], repeats: int,
                warmup: bool = True) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Run each callable once untimed (``warmup``), then ``repeats`` rounds of all of them in turn;
    returns the wall and the CPU seconds of every timed run, by name. Alternating spreads the load of
    other jobs over all runs, so ratios of the fastest (or median) times are fair."""
    if warmup:
        for run in runs.values():
            run()
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return wall, cpu


def training_step(preset: str, batch: int, device: str = "cpu") -> Callable[[], None]:
    """One MAE training step of ``preset`` as the trainer runs it (forward + backward + AdamW, 75% random
    masking, fp32) on one fixed batch of random images, as a callable."""
    import torch

    from maelens import create_model
    from maelens.train.optim import build_optimizer

    torch.manual_seed(0)
    model = create_model(preset).to(device).train()
    optimizer = build_optimizer(model, lr=1e-4, weight_decay=0.05)
    size = model.config.img_size
    imgs = torch.randn(batch, 3, size, size, device=device)
    generator = torch.Generator().manual_seed(0)

    def step() -> None:
        loss, _, _ = model(imgs, 0.75, generator=generator)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step
