"""Cost of SimCLR's two augmented views per batch: maelens's batched tensor augmentation
(:class:`maelens.data.augment.SimCLRAugment`) against torchvision's per-image pipeline with the same
operations (on tensors, and on PIL images as a usual SimCLR data loader does), and against one training
step of the ResNet-18 SimCLR model on those views (forward + backward + AdamW), all in one process.

Usage: ``python benchmarks/simclr_augment.py [--batch 128] [--size 64] [--repeats 3] [--threads 1]``.
Each path is timed ``repeats`` times alternately; the fastest repeat is compared (other jobs only add
time). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torchvision.transforms import v2

from maelens.data.augment import SimCLRAugment, gaussian_kernel_size
from maelens.models.contrastive import nt_xent_loss
from maelens.models.simclr import create_simclr


def torchvision_pipeline(size: int, s: float = 0.5) -> v2.Compose:
    """torchvision's per-image SimCLR augmentation with maelens's defaults (strength 0.5, blur p 0.5)."""
    return v2.Compose([
        v2.RandomResizedCrop(size, scale=(0.08, 1.0), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomApply([v2.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)], p=0.8),
        v2.RandomGrayscale(p=0.2),
        v2.RandomApply([v2.GaussianBlur(gaussian_kernel_size(size), sigma=(0.1, 2.0))], p=0.5),
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images = torch.rand(args.batch, 3, args.size, args.size)
    pil = [v2.functional.to_pil_image(img) for img in images]
    batched, per_image = SimCLRAugment(args.size), torchvision_pipeline(args.size)
    to_tensor = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])
    generator = torch.Generator().manual_seed(0)
    model = create_simclr(img_size=args.size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    views = torch.cat([batched(images, generator), batched(images, generator)])

    def step() -> None:
        z_a, z_b = model(views).chunk(2)
        nt_xent_loss(z_a, z_b).backward()
        optimizer.step()
        optimizer.zero_grad()

    runs = {
        "batched": lambda: [batched(images, generator) for _ in range(2)],
        "torchvision_tensor": lambda: [torch.stack([per_image(img) for img in images]) for _ in range(2)],
        "torchvision_pil": lambda: [torch.stack([to_tensor(per_image(img)) for img in pil]) for _ in range(2)],
        "train_step": step,
    }
    for run in runs.values():  # warm-up
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    best = {name: min(t) for name, t in times.items()}
    print(json.dumps({
        "batch": args.batch, "size": args.size, "threads": args.threads,
        "seconds": {k: round(v, 4) for k, v in best.items()},
        "speedup_vs_torchvision_tensor": round(best["torchvision_tensor"] / best["batched"], 1),
        "speedup_vs_torchvision_pil": round(best["torchvision_pil"] / best["batched"], 1),
        "augment_share_of_step": round(best["batched"] / (best["batched"] + best["train_step"]), 3),
    }))


if __name__ == "__main__":
    main()
