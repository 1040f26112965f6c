"""End-to-end training speed against the bare model step (issue 23: the data path must not be the bottleneck).

For each preset, in one process and with the trainer's thread count:

- ``step``: the model step alone (forward + backward + AdamW, 75% random masking) on one fixed batch
  already in memory, images/s (median over steps);
- ``device``: :func:`maelens.train.train` (what ``maelens train`` runs) on the bundled photographs at the
  model's size, images kept as uint8 and cropped/flipped as one batch per step
  (:mod:`maelens.data.device_batches`): images/s of the epochs after the first (median), which counts
  everything the loop does between two steps (batches, augmentation, logging);
- ``loader``: the same run through the former path, a DataLoader applying torchvision's per-image transform.

Ratios ``device / step`` and ``loader / step`` are printed (targets of issue 23: >= 0.85 for tiny, >= 0.95
for ipol64).

    python benchmarks/data_path.py                     # tiny and ipol64
    python benchmarks/data_path.py --short             # a quick check that it runs
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from _timing import training_step
from torch.utils.data import Dataset

BATCH = {"tiny": 32, "ipol64": 64}


class Opaque(Dataset):
    """A dataset the fast path does not recognise: the trainer falls back to a DataLoader over it."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.dataset[index]


def step_speed(preset: str, batch: int, steps: int) -> float:
    """Median images/s of the bare training step on a fixed batch."""
    step = training_step(preset, batch)
    times = []
    for k in range(steps + 2):
        start = time.perf_counter()
        step()
        if k >= 2:
            times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def train_speed(preset: str, batch: int, images: int, epochs: int, opaque: bool) -> float:
    """Images/s of a ``train()`` run on the bundled photographs: the median over its epochs after the first (the
    first holds the allocations and the thread governor's trial steps)."""
    from maelens.data import load_dataset
    from maelens.models.presets import get_config
    from maelens.train import TrainConfig, train

    size = get_config(preset).img_size
    data = load_dataset("bundled", image_size=size, train=True, limit=images)
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(preset=preset, epochs=epochs, batch_size=batch, warmup_epochs=1, quiet=True,
                             recon_images=0, out=str(Path(out) / "run"), precision="fp32")
        result = train(config, dataset=Opaque(data) if opaque else data)
    return statistics.median(h["images_per_s"] for h in result.history[1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "ipol64"], choices=sorted(BATCH))
    parser.add_argument("--short", action="store_true", help="a few steps only (proves it runs)")
    args = parser.parse_args(argv)
    print(f"threads {torch.get_num_threads()}, fp32; images/s (train runs: median of the epochs after the first)")
    print(f"{'preset':<8} {'batch':>5} {'step':>8} {'device':>8} {'loader':>8} {'device/step':>12} {'loader/step':>12}")
    for preset in args.presets:
        batch = BATCH[preset]
        images = batch * (6 if args.short else 16)
        # the first epoch is a warm-up (allocations, the thread governor's check); the others are timed. A tiny
        # epoch lasts about half a second, so one of them is noisy (0.69-0.95 of the step between runs): the
        # median of three; ipol64's 13 s epochs are steady, and its run is the suite's longest step
        epochs = 2 if args.short or preset == "ipol64" else 4
        steps = 3 if args.short else (12 if preset == "ipol64" else 30)
        step = step_speed(preset, batch, steps)
        device = train_speed(preset, batch, images, epochs, opaque=False)
        loader = train_speed(preset, batch, images, epochs, opaque=True)
        step = max(step, step_speed(preset, batch, steps))  # before and after: the faster of the two
        print(f"{preset:<8} {batch:>5} {step:8.1f} {device:8.1f} {loader:8.1f} {device / step:12.2f} "
              f"{loader / step:12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
