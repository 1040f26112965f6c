"""Training-step throughput (images/s) of the MAE presets: eager vs fused attention vs torch.compile.

One step is forward + backward + AdamW on a batch of random images with 75% random masking, as the
trainer runs it. The modes of a preset are timed in one child process, their steps interleaved so
that other load on the machine hits them alike (ratios to eager are taken inside that process);
``compile`` gets its own child with its own eager reference and a time limit, so a slow or
unsupported ``torch.compile`` is reported instead of stopping the run.

    python benchmarks/train_throughput.py                      # tiny and ipol64, all modes
    python benchmarks/train_throughput.py --presets ipol64 --steps 20 --json results.json

Modes: ``eager`` (timm attention with explicit softmax, float32), ``fused`` (scaled_dot_product_attention),
``bf16`` (eager attention under ``torch.autocast(dtype=bfloat16)``, the loss in float32: what
``--precision auto`` picks on a CPU with AVX512-BF16/AMX or a bf16 GPU), ``compile`` (torch.compile of the
model, attention as the trainer's default for the device), ``official`` (the facebookresearch/mae
``models_mae.MaskedAutoencoderViT`` with the preset's sizes, float32, from a local checkout given with
``--official-repo DIR``; nothing of it is bundled here; timm's ``Block`` no longer takes its ``qk_scale``
argument, so that one keyword is dropped, and ``np.float``, gone from numpy, is aliased to ``float``; its
optimizer is ``main_pretrain.py``'s: torch's AdamW with its defaults over the same two parameter groups).

Each child also measures, in the same process, the float32 matmul rate (a 2048 x 2048 product, GFLOP/s)
and counts the FLOPs of one step (``torch.utils.flop_counter``: matrix products and attention, forward and
backward); ``matmul_fraction`` = achieved FLOP/s of the step / that matmul rate (fp32 modes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

MODES = ("eager", "fused", "bf16", "compile", "official")


def official_model(preset: str, repo: str | None):
    """The official ``models_mae.MaskedAutoencoderViT`` built with ``preset``'s sizes from a local checkout."""
    import functools
    import importlib

    import timm.models.vision_transformer as vit
    from torch import nn

    from maelens import create_model

    if not repo:
        raise SystemExit("mode 'official' needs --official-repo DIR (a facebookresearch/mae checkout)")
    sys.path.insert(0, repo)
    block = vit.Block

    def compatible_block(*args, qk_scale=None, **kwargs):  # timm >= 0.9 dropped qk_scale (always None there)
        return block(*args, **kwargs)

    import numpy as np

    if not hasattr(np, "float"):  # numpy >= 1.24 removed np.float, which the official sin-cos tables use
        np.float = float
    official = importlib.import_module("models_mae")
    official.Block = compatible_block
    c = create_model(preset).config
    return official.MaskedAutoencoderViT(
        img_size=c.img_size, patch_size=c.patch_size, in_chans=c.in_chans, embed_dim=c.embed_dim, depth=c.depth,
        num_heads=c.num_heads, decoder_embed_dim=c.decoder_embed_dim, decoder_depth=c.decoder_depth,
        decoder_num_heads=c.decoder_num_heads, mlp_ratio=c.mlp_ratio,
        norm_layer=functools.partial(nn.LayerNorm, eps=c.layer_norm_eps), norm_pix_loss=c.norm_pix_loss)


def measure(preset: str, modes: list[str], batch_size: int, steps: int, warmup: int, device: str,
            official_repo: str | None = None) -> list[dict]:
    """Median images/s of each mode over ``steps`` timed steps, the modes interleaved step by step
    so that other load on the machine hits them alike; ``ratio`` is relative to eager in this process."""
    import torch

    from maelens import create_model
    from maelens.models import set_fused_attention
    from maelens.train.optim import build_optimizer, param_groups
    from maelens.train.precision import resolve_precision

    dev = torch.device(device)
    runners, warmup_s, flops = {}, {}, {}
    for mode in modes:
        torch.manual_seed(0)
        model = (official_model(preset, official_repo) if mode == "official" else create_model(preset)).to(dev).train()
        set_fused_attention(model, mode == "fused" or (mode == "compile" and dev.type == "cuda"))  # official: eager too
        step_model = torch.compile(model) if mode == "compile" else model
        if mode == "official":  # main_pretrain.py: torch's AdamW with its defaults over the same groups
            optimizer = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-4, betas=(0.9, 0.95))
        else:
            optimizer = build_optimizer(model, lr=1e-4, weight_decay=0.05)
        size = create_model(preset).config.img_size if mode == "official" else model.config.img_size
        imgs = torch.randn(batch_size, 3, size, size, device=dev)
        generator = torch.Generator().manual_seed(0)
        precision = resolve_precision("bf16" if mode == "bf16" else "fp32", dev)

        def step(step_model=step_model, optimizer=optimizer, imgs=imgs, generator=generator,
                 precision=precision, official=mode == "official") -> None:
            with precision.autocast(dev.type):
                if official:  # the official forward draws its masks with torch.rand
                    loss, _, _ = step_model(imgs, 0.75)
                else:
                    loss, _, _ = step_model(imgs, 0.75, masking="random", generator=generator)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        flops[mode] = step_flops(model, imgs, official=mode == "official")
        start = time.perf_counter()
        for _ in range(warmup):
            step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        warmup_s[mode] = time.perf_counter() - start
        runners[mode] = step
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(steps):
        for mode, step in runners.items():
            t0 = time.perf_counter()
            step()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times[mode].append(time.perf_counter() - t0)
    speed = {mode: batch_size / statistics.median(t) for mode, t in times.items()}
    gflops = matmul_gflops(dev)
    return [{"preset": preset, "mode": mode, "status": "ok", "images_per_s": speed[mode],
             "vs_eager": speed[mode] / speed["eager"] if "eager" in speed else None,
             "vs_official": speed[mode] / speed["official"] if "official" in speed else None,
             "warmup_s": warmup_s[mode], "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
             "step_gflop": flops[mode] / 1e9, "matmul_gflops": gflops,
             "matmul_fraction": (flops[mode] * speed[mode] / batch_size / 1e9 / gflops
                                 if mode not in ("bf16", "compile") else None),
             "threads": torch.get_num_threads()} for mode in modes]


def matmul_gflops(device, n: int = 2048, repeats: int = 8) -> float:
    """The float32 matmul rate of this process: best of ``repeats`` n x n products, GFLOP/s."""
    import torch

    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(repeats + 1):
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def step_flops(model, imgs, official: bool = False) -> float:
    """FLOPs of one forward + backward (matrix products, convolutions and attention, as torch counts them)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        loss = model(imgs, 0.75)[0] if official else model(imgs, 0.75, generator=torch.Generator().manual_seed(0))[0]
        loss.backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def run_child(preset: str, modes: list[str], args: argparse.Namespace) -> list[dict]:
    """:func:`measure` in a fresh process, killed after ``args.timeout`` seconds."""
    cmd = [sys.executable, __file__, "--child", preset, ",".join(modes), "--batch-size", str(args.batch_size),
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--device", args.device]
    if args.official_repo:
        cmd += ["--official-repo", args.official_repo]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        status = f"timeout after {args.timeout:.0f} s"
    else:
        if proc.returncode == 0:
            return json.loads(proc.stdout.strip().splitlines()[-1])
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        status = f"failed: {lines[-1][:120] if lines else proc.returncode}"
    return [{"preset": preset, "mode": mode, "status": status} for mode in modes]


def machine() -> dict:
    """What ran the benchmark: CPU model and count, torch version, GPU if any."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cpus": os.cpu_count(), "torch": torch.__version__, "gpu": gpu}


def table(rows: list[dict]) -> str:
    """Plain-text table; ``vs eager`` is measured against eager in the same process, steps interleaved."""
    lines = [f"{'preset':<8} {'mode':<8} {'images/s':>9} {'vs eager':>9} {'vs offic.':>9} {'of matmul':>9} "
             f"{'warm-up s':>9}  status", "-" * 80]

    def number(r: dict, key: str, digits: int) -> str:
        value = r.get(key) if r["status"] == "ok" else None
        return f"{value:9.{digits}f}" if value is not None else f"{'-':>9}"

    for r in rows:
        lines.append(f"{r['preset']:<8} {r['mode']:<8} {number(r, 'images_per_s', 1)} {number(r, 'vs_eager', 2)} "
                     f"{number(r, 'vs_official', 2)} {number(r, 'matmul_fraction', 2)} {number(r, 'warmup_s', 1)}  "
                     f"{r['status']}")
    gflops = next((r["matmul_gflops"] for r in rows if r.get("matmul_gflops")), None)
    if gflops:
        lines.append(f"fp32 matmul rate in the same processes: {gflops:.0f} GFLOP/s (2048 x 2048)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "ipol64"])
    parser.add_argument("--modes", nargs="+", default=["eager", "fused", "bf16", "compile"], choices=MODES)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per (preset, mode)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--official-repo", default=None, metavar="DIR",
                        help="a facebookresearch/mae checkout, for the 'official' mode")
    parser.add_argument("--matmul-only", action="store_true",
                        help="print torch's CPU capability and the fp32 matmul rate, then stop")
    parser.add_argument("--child", nargs=2, metavar=("PRESET", "MODES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    import torch

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.matmul_only:
        print(f"{args.device}: capability {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} "
              f"threads, fp32 matmul {matmul_gflops(torch.device(args.device)):.0f} GFLOP/s (2048 x 2048)")
        return 0
    if args.child:
        preset, modes = args.child
        print(json.dumps(measure(preset, modes.split(","), args.batch_size, args.steps, args.warmup, args.device,
                                 args.official_repo)))
        return 0
    rows = []
    plain = [m for m in args.modes if m != "compile"]
    for preset in args.presets:
        groups = ([plain] if plain else []) + ([["eager", "compile"]] if "compile" in args.modes else [])
        for modes in groups:
            for row in run_child(preset, modes, args):
                if row["mode"] == "eager" and any(r["preset"] == preset and r["mode"] == "eager" for r in rows):
                    continue  # the compile run's own eager reference; its ratio is in the compile row
                rows.append(row)
                print(f"{preset} {row['mode']}: {row['status']}", file=sys.stderr)
    info = machine()
    print(f"device {args.device}; CPU {info['cpu']} x {info['cpus']}; GPU {info['gpu']}; torch {info['torch']}; "
          f"batch {args.batch_size}, 75% random masking, forward + backward + AdamW")
    print(table(rows))
    if args.json:
        from maelens.io import write_json

        write_json(args.json, {"machine": info, "device": args.device, "batch_size": args.batch_size,
                               "steps": args.steps, "results": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
