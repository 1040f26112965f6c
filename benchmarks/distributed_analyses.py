"""Images per second of ``attention_stats`` and ``extract_features`` at world size 1 and 2 (and more),
run under ``torchrun`` exactly as ``torchrun --nproc_per_node=N -m maelens attention-stats|features``
runs them (issue 28), and the scaling efficiency ``(images/s at N) / (N x images/s at 1)``.

Usage: ``python benchmarks/distributed_analyses.py [--preset ipol64] [--images 512] [--batch-size 32]
[--worlds 1 2] [--repeats 3] [--device cpu|cuda] [--out results.json]``; ``--short`` is a smoke run
(tiny model, 16 images, one repeat) that proves the benchmark works, not a measurement.

Each world size is a fresh ``torchrun --standalone`` launch of this file in worker mode; every process
gets one thread (``OMP_NUM_THREADS=1``), so on CPU world size N uses N cores and the efficiency says
what sharding and the reductions cost. Every timed run is framed by barriers and its time is the
slowest rank's (rank 0 measures between the barriers); the fastest of ``--repeats`` runs is reported
(other jobs only ever add time), after one untimed warm-up run. On CPU the processes use gloo; with
``--device cuda`` NCCL and one GPU per process (world sizes up to the GPUs visible). The figures
mean something only on an idle machine with at least max(--worlds) free cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def worker(args: argparse.Namespace) -> None:
    """One rank: time each analysis over the same random images, print rank 0's JSON line."""
    import torch
    import torch.distributed as dist
    from torch.utils.data import TensorDataset

    from maelens.analysis.attention_dataset import attention_stats
    from maelens.analysis.features import extract_features
    from maelens.models import create_model

    torch.set_num_threads(1)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local) if args.device == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    torch.manual_seed(0)
    model = create_model(args.preset).eval()
    size = model.config.img_size
    images = torch.randn(args.images, 3, size, size, generator=torch.Generator().manual_seed(0))
    dataset = TensorDataset(images, torch.zeros(args.images, dtype=torch.long))
    runs = {
        "attention_stats": lambda: attention_stats(model, dataset, masking="grid", batch_size=args.batch_size,
                                                   device=device, num_examples=0),
        "features": lambda: extract_features(model, dataset, mask_ratio=0.0, pool="mean", batch_size=args.batch_size,
                                             device=device, quiet=True),
    }

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()
        if world > 1:
            dist.barrier()

    result = {"preset": args.preset, "images": args.images, "batch_size": args.batch_size, "world_size": world,
              "device": device.type, "repeats": args.repeats}
    for name, run in runs.items():
        run()  # warm-up: allocations, first-call costs
        times = []
        for _ in range(args.repeats):
            sync()
            start = time.perf_counter()
            run()
            sync()
            times.append(time.perf_counter() - start)
        result[f"{name}_img_per_s"] = round(args.images / min(times), 2)
        result[f"{name}_s"] = [round(t, 4) for t in times]
    if world > 1:
        dist.barrier()  # every rank together, as maelens.cli.launch.leave: a lone teardown may abort at exit
        dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print("RESULT " + json.dumps(result), flush=True)


def launch(args: argparse.Namespace, world: int) -> dict:
    """Run this file's worker under ``torchrun --standalone --nproc_per_node=world``; rank 0's result."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world}",
               str(Path(__file__).resolve()), "--worker", "--preset", args.preset, "--images", str(args.images),
               "--batch-size", str(args.batch_size), "--repeats", str(args.repeats), "--device", args.device]
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"world size {world} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="ipol64")
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--worlds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--short", action="store_true", help="smoke run: tiny model, 16 images, one repeat")
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.short:
        args.preset, args.images, args.batch_size, args.repeats = "tiny", 16, 4, 1
    if args.worker:
        worker(args)
        return
    results = [launch(args, world) for world in args.worlds]
    base = next((r for r in results if r["world_size"] == 1), None)
    for r in results:
        for name in ("attention_stats", "features"):
            if base is not None:
                speedup = r[f"{name}_img_per_s"] / base[f"{name}_img_per_s"]
                r[f"{name}_speedup"] = round(speedup, 3)
                r[f"{name}_efficiency"] = round(speedup / r["world_size"], 3)
        r["short"] = args.short
        r["cpu_count"] = os.cpu_count()
        r["load_average_1min"] = round(os.getloadavg()[0], 2)
        print(json.dumps(r))
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
