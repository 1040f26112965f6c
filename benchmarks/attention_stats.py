"""Throughput of ``attention_stats`` (hooks + IPOL sec. 5 metrics + streaming pooling) against a
plain forward pass of the same model on the same batches.

Usage: ``python benchmarks/attention_stats.py [--presets tiny ipol64 mae-base] [--images 256]
[--large-images 16] [--repeats 3]``; presets whose input is 224 pixels or more (``mae-base``: ViT-B/16,
196 patches, decoder maps 16 x 197 x 197 per layer) run on ``--large-images`` images only.
Both paths iterate the same DataLoader over random images with the same grid masking; the two are
timed alternately, and the fastest repeat of each is compared (interference from other jobs only
ever adds time, so the minimum is the most stable estimate on a shared machine; medians are printed
too). Wall time and process CPU time are both recorded; with ``--threads 1`` the CPU-time ratio is
the least noisy. Prints one JSON line per preset.
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch
from _timing import interleaved
from torch.utils.data import DataLoader, TensorDataset

from maelens.analysis.attention_dataset import attention_stats
from maelens.models import create_model, get_config


@torch.no_grad()
def plain_forward(model: torch.nn.Module, dataset: TensorDataset, batch_size: int, mask: str, ratio: float) -> None:
    """The model's own forward pass (loss, prediction, mask) over the dataset."""
    generator = torch.Generator().manual_seed(0)
    for imgs, _ in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        model(imgs, ratio, masking=mask, generator=generator)


def bench(preset: str, images: int, batch_size: int, repeats: int, mask: str, ratio: float, encoder: bool) -> dict:
    torch.manual_seed(0)
    model = create_model(preset).eval()
    size = model.config.img_size
    dataset = TensorDataset(torch.randn(images, 3, size, size), torch.zeros(images, dtype=torch.long))
    runs = {
        "forward": lambda: plain_forward(model, dataset, batch_size, mask, ratio),
        "attention_stats": lambda: attention_stats(model, dataset, masking=mask, mask_ratio=ratio, encoder=encoder,
                                                   batch_size=batch_size, num_examples=0),
    }
    wall, cpu = interleaved(runs, repeats)

    def overhead(times: dict[str, list[float]], pick) -> float:
        return round(pick(times["attention_stats"]) / pick(times["forward"]) - 1, 3)

    return {"preset": preset, "images": images, "batch_size": batch_size, "mask": mask, "encoder": encoder,
            "threads": torch.get_num_threads(), "repeats": repeats,
            "forward_img_per_s": round(images / min(wall["forward"]), 1),
            "attention_stats_img_per_s": round(images / min(wall["attention_stats"]), 1),
            "overhead_wall_min": overhead(wall, min), "overhead_cpu_min": overhead(cpu, min),
            "overhead_wall_median": overhead(wall, statistics.median),
            "overhead_cpu_median": overhead(cpu, statistics.median)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "ipol64", "mae-base"])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--large-images", type=int, default=16, help="images for presets of 224 pixels or more")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--mask", default="grid")
    parser.add_argument("--mask-ratio", type=float, default=0.75)
    parser.add_argument("--encoder", action="store_true", help="also record the encoder layers")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for preset in args.presets:
        images = args.large_images if get_config(preset).img_size >= 224 else args.images
        print(json.dumps(bench(preset, images, min(args.batch_size, images), args.repeats, args.mask,
                               args.mask_ratio, args.encoder)), flush=True)


if __name__ == "__main__":
    main()
