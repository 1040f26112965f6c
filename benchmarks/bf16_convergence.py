"""Does bf16 autocast train to the same model as float32? (issue 12's convergence check)

Trains each preset twice with the same seed, data order and masks, once ``--precision fp32`` and
once ``--precision bf16``, then reports the final training loss and the RGB error on removed
patches of the test split (evaluated in float32 for both, the same seeded masks), and the bf16/fp32
ratios. The target is bf16 within 2% of fp32 on both figures.

    python benchmarks/bf16_convergence.py                         # tiny 30 epochs + ipol64 3 epochs
    python benchmarks/bf16_convergence.py --ipol64-epochs 5 --json runs/bf16.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def train_both(preset: str, data: str, epochs: int, batch_size: int, blr: float, schedule: str,
               out: Path, quiet: bool) -> list[dict]:
    """One fp32 and one bf16 run of the same settings; their final loss, masked RGB MSE and time."""
    from maelens.analysis.reconstruction import reconstruction_error
    from maelens.data import load_dataset
    from maelens.train import TrainConfig, train

    rows = []
    for precision in ("fp32", "bf16"):
        config = TrainConfig(preset=preset, data=data, epochs=epochs, batch_size=batch_size, blr=blr,
                             warmup_epochs=min(2.0, epochs / 4), schedule=schedule, precision=precision,
                             recon_images=0, quiet=quiet, seed=0, out=str(out / f"{preset}-{precision}"))
        start = time.perf_counter()
        result = train(config)
        seconds = time.perf_counter() - start
        cfg = result.model.config
        test = load_dataset(data, image_size=cfg.img_size, split="test", mean=cfg.norm_mean, std=cfg.norm_std)
        error = reconstruction_error(result.model.float(), test, seed=0)
        rows.append({"preset": preset, "data": data, "epochs": epochs, "precision": precision,
                     "final_loss": result.final_loss, "masked_rgb_mse": error.model_mse,
                     "baseline_mse": error.baseline_mse, "train_s": seconds,
                     "images_per_s": sum(h["images_per_s"] for h in result.history) / len(result.history)})
    fp32, bf16 = rows
    for key in ("final_loss", "masked_rgb_mse", "train_s"):
        bf16[f"{key}_vs_fp32"] = bf16[key] / fp32[key]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny-epochs", type=int, default=30)
    parser.add_argument("--ipol64-epochs", type=int, default=3, help="0 skips the ipol64 pair")
    parser.add_argument("--json", default=None, metavar="PATH")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    from maelens.train.precision import cpu_bf16_flags

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows += train_both("tiny", "bundled", args.tiny_epochs, 32, 1e-2, "cosine", Path(tmp), args.quiet)
        if args.ipol64_epochs:
            rows += train_both("ipol64", "photos", args.ipol64_epochs, 256, 1.5e-4, "linear", Path(tmp), args.quiet)
    print(f"CPU bf16 flags: {', '.join(cpu_bf16_flags()) or 'none'}")
    print(f"{'preset':<7} {'epochs':>6} {'precision':<9} {'final loss':>10} {'masked MSE':>10} {'train s':>8} "
          f"{'loss ratio':>10} {'MSE ratio':>9} {'time ratio':>10}")
    for r in rows:
        ratios = (f"{r['final_loss_vs_fp32']:>10.4f} {r['masked_rgb_mse_vs_fp32']:>9.4f} {r['train_s_vs_fp32']:>10.2f}"
                  if "final_loss_vs_fp32" in r else f"{'':>10} {'':>9} {'':>10}")
        print(f"{r['preset']:<7} {r['epochs']:>6} {r['precision']:<9} {r['final_loss']:>10.4f} "
              f"{r['masked_rgb_mse']:>10.4f} {r['train_s']:>8.0f} {ratios}")
    if args.json:
        from maelens.io import write_json

        write_json(args.json, {"bf16_flags": cpu_bf16_flags(), "results": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
