"""CKA between all encoder layers (``maelens.analysis.cka.layer_cka``) against one feature-extraction pass
(``maelens.analysis.features.extract_features``) over the same images: the issue-14 target is a ratio of
at most 1.5.

    .venv/bin/python benchmarks/cka.py [--preset ipol64] [--images 2000] [--batch-size 64] [--repeats 3]

The model has random weights (the cost does not depend on them) and the images are random normalised
tensors (the same dataset object for every run, so data loading costs the same). Runs alternate
(extract, linear CKA, minibatch CKA, token-level linear CKA) ``--repeats`` times; each is timed by process
CPU time and wall time, and the fastest repeat of each is kept (interference from other jobs only adds
time). Ratios are to the fastest extraction in the same process.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from maelens.analysis.cka import layer_cka
from maelens.analysis.features import extract_features
from maelens.models import create_model


def timed(fn) -> tuple[float, float]:
    """(process CPU seconds, wall seconds) of ``fn()``."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="ipol64")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--no-tokens", action="store_true", help="skip the token-level linear CKA run")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    model = create_model(args.preset, decoder_depth=0).eval()
    size = model.config.img_size
    images = torch.randn(args.images, 3, size, size, generator=torch.Generator().manual_seed(0))
    dataset = torch.utils.data.TensorDataset(images, torch.zeros(args.images, dtype=torch.long))
    common = {"batch_size": args.batch_size, "quiet": True}
    runs = {
        "extract (mean pool)": lambda: extract_features(model, dataset, pool="mean", **common),
        "linear CKA, mean pool": lambda: layer_cka(model, dataset, pool="mean", **common),
        "minibatch CKA, mean pool": lambda: layer_cka(model, dataset, pool="mean", estimator="minibatch", **common),
    }
    if not args.no_tokens:
        runs["linear CKA, every token"] = lambda: layer_cka(model, dataset, pool="tokens", **common)
    best = {name: [float("inf"), float("inf")] for name in runs}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            cpu, wall = timed(fn)
            best[name] = [min(best[name][0], cpu), min(best[name][1], wall)]
    base_cpu, base_wall = best["extract (mean pool)"]
    report = {"preset": args.preset, "images": args.images, "batch_size": args.batch_size, "repeats": args.repeats,
              "layers": len(model.blocks), "threads": torch.get_num_threads(),
              "runs": {name: {"cpu_s": cpu, "wall_s": wall, "ratio_cpu": cpu / base_cpu, "ratio_wall": wall / base_wall}
                       for name, (cpu, wall) in best.items()}}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{args.preset} (random weights), {len(model.blocks)} encoder layers, {args.images} images, batch "
          f"{args.batch_size}, {torch.get_num_threads()} thread(s), fastest of {args.repeats}")
    print(f"{'run':<26} {'CPU s':>8} {'wall s':>8} {'ratio CPU':>10} {'ratio wall':>11}")
    for name, row in report["runs"].items():
        print(f"{name:<26} {row['cpu_s']:8.2f} {row['wall_s']:8.2f} {row['ratio_cpu']:10.3f} {row['ratio_wall']:11.3f}")


if __name__ == "__main__":
    main()
