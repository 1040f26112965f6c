"""Fused vs eager attention in a CPU training step, in float32 and under bf16 autocast (issue 23).

The trainer picks timm's fused kernel or the eager path by this measurement
(:func:`maelens.train.methods.use_fused_attention`). For each preset and precision, one MAE training step
(forward with 75% random masking, backward, fused AdamW) on a fixed batch, both kernels built from the same
seed and timed alternately in one process; the median CPU time of the step (process CPU time, so the
figure holds on a loaded machine with one thread) and the ratio eager / fused (> 1: fused is faster).

    python benchmarks/attention_kernel.py                 # tiny and ipol64, fp32 and bf16, 1 thread
    python benchmarks/attention_kernel.py --short         # a quick check that it runs
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Callable

import torch
from _timing import interleaved

BATCH = {"tiny": 32, "ipol64": 64}


def step_fn(preset: str, batch: int, fused: bool, bf16: bool) -> Callable[[], None]:
    """One training step of a fresh ``preset`` with the given kernel and precision, as a callable."""
    from maelens import create_model
    from maelens.models.mae import set_fused_attention
    from maelens.train.optim import build_optimizer

    torch.manual_seed(0)
    model = create_model(preset).train()
    set_fused_attention(model, fused)
    optimizer = build_optimizer(model, lr=1e-4, weight_decay=0.05)
    size = model.config.img_size
    imgs = torch.randn(batch, 3, size, size)
    generator = torch.Generator().manual_seed(0)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(imgs, 0.75, generator=generator)[0]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "ipol64"], choices=sorted(BATCH))
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--short", action="store_true", help="two rounds only (proves it runs)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"threads {torch.get_num_threads()}; median CPU ms per training step")
    print(f"{'preset':<8} {'batch':>5} {'precision':>9} {'eager':>9} {'fused':>9} {'eager/fused':>12}")
    for preset in args.presets:
        for precision in args.precisions:
            runs = {kind: step_fn(preset, BATCH[preset], kind == "fused", precision == "bf16")
                    for kind in ("eager", "fused")}
            repeats = 2 if args.short else (6 if preset == "ipol64" else 15)
            _, cpu = interleaved(runs, repeats)
            eager, fused = statistics.median(cpu["eager"]), statistics.median(cpu["fused"])
            print(f"{preset:<8} {BATCH[preset]:>5} {precision:>9} {1e3 * eager:9.1f} {1e3 * fused:9.1f} "
                  f"{eager / fused:12.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
