"""Everything a lent GPU should do, in one command and under 8 minutes (issue 23); tried on the CPU first.

    python benchmarks/gpu_check.py                       # on the GPU machine: results under $OUT
    python benchmarks/gpu_check.py --device cpu --smoke  # the same stages, tiny sizes, about a minute
    python benchmarks/gpu_check.py --analyse DIR         # on the CPU, after: load DIR's weights and analyse

Stages, each timed and recorded in ``OUT/gpu_check.json`` (a failing stage is recorded and the next runs):

1. ``tests``: ``pytest -m cuda`` (CPU vs CUDA forward, bf16 autocast, attention hooks with fused attention,
   DDP over NCCL at world size 1, the batched augmentations on the GPU; they skip without CUDA);
2. ``throughput``: training steps of ``ipol64`` and ``mae-base`` in fp32 (eager and fused attention), under
   bf16 autocast and compiled (``benchmarks/train_throughput.py``, each in a child with a time limit);
3. ``analysis_speed``: attention statistics against a plain forward (overhead) and the feature pass, images/s;
4. ``pretrain``: ``ipol64`` with the paper's recipe (IPOL sec. 4: batch 256, blr 1.5e-4, 2 warm-up epochs,
   linear decay, 75% random masking) on generated images (this file's :func:`generated_images`: the working
   tree carries its recipe, not the pixels), as many epochs as fit ``--budget-s`` at the measured speed;
   the weights are written as float16 parts of at most 16 MiB (:mod:`maelens.checkpoint.split`).

At most 8 files come back from the GPU machine: ``gpu_check.json``, ``pytest.txt``, ``weights.json`` and
``weights.partK.pt`` (two for ipol64). Needs only torch, timm, numpy, scikit-learn and maelens (no openTSNE,
no network). None of the CUDA paths has run on hardware yet.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

#: The shapes of :func:`generated_images`, one class each.
SHAPES = ("ellipses", "rectangles", "stripes", "rings")


def generated_images(n: int, size: int = 64, seed: int = 0, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 (size, size, 3) images and their class: three random shapes of one kind (:data:`SHAPES`)
    in random colours over a random colour gradient, plus a little noise; balanced classes. The random draws
    come from a seeded CPU generator (the same images on every device); the drawing runs on ``device``."""
    gen = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % len(SHAPES))[torch.randperm(n, generator=gen)]
    axis = torch.linspace(0, 1, size, device=device)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    out = np.empty((n, size, size, 3), np.uint8)

    def rand(*shape: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
        return (low + (high - low) * torch.rand(*shape, generator=gen)).to(device)

    for start in range(0, n, 2048):
        m = min(2048, n - start)
        lab = labels[start:start + m].to(device)
        a, b = rand(m, 1, 1, 3), rand(m, 1, 1, 3)
        direction = rand(m, 1, 1, 1, high=2 * math.pi)
        ramp = (torch.cos(direction) * x[None, :, :, None] + torch.sin(direction) * y[None, :, :, None] + 1) / 2
        img = a + (b - a) * ramp  # (m, size, size, 3) background
        for _ in range(3):
            cx, cy = rand(m, 1, 1, low=0.15, high=0.85), rand(m, 1, 1, low=0.15, high=0.85)
            rx, ry = rand(m, 1, 1, low=0.08, high=0.3), rand(m, 1, 1, low=0.08, high=0.3)
            angle = rand(m, 1, 1, high=math.pi)
            u = ((x - cx) * torch.cos(angle) + (y - cy) * torch.sin(angle)) / rx
            v = (-(x - cx) * torch.sin(angle) + (y - cy) * torch.cos(angle)) / ry
            radius = torch.sqrt(u**2 + v**2)
            inside = torch.stack([radius <= 1,  # ellipses
                                  (u.abs() <= 1) & (v.abs() <= 1),  # rectangles
                                  (radius <= 1.6) & (torch.sin(6 * u) > 0),  # stripes in a disc
                                  (radius <= 1) & (radius >= 0.6)])  # rings
            mask = inside[lab, torch.arange(m, device=device)][..., None]
            img = torch.where(mask, rand(m, 1, 1, 3), img)
        img = img + 0.02 * torch.randn(img.shape, generator=gen).to(device)
        out[start:start + m] = (img * 255 + 0.5).clamp(0, 255).to(torch.uint8).cpu().numpy()
    return out, labels.numpy().astype(np.int64)


def stage(results: dict, name: str, run: Callable[[], Any]) -> Any:
    """Run one stage, record its result (or error) and seconds in ``results[name]``."""
    start = time.perf_counter()
    print(f"[{name}] ...", file=sys.stderr, flush=True)
    try:
        value = run()
        results[name] = {"status": "ok", "result": value}
    except Exception as err:  # a failing stage is a result too: the next stages still run
        value = None
        results[name] = {"status": f"failed: {type(err).__name__}: {err}"[:400]}
    results[name]["seconds"] = round(time.perf_counter() - start, 1)
    print(f"[{name}] {results[name]['status']} in {results[name]['seconds']} s", file=sys.stderr, flush=True)
    return value


def run_tests(out: Path, timeout: float) -> dict:
    """``pytest -m cuda`` on the CUDA test file; its output goes to ``OUT/pytest.txt``."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider", "-m", "cuda",
           str(ROOT / "tests" / "test_cuda.py")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    (out / "pytest.txt").write_text(proc.stdout[-20000:] + proc.stderr[-5000:])
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    counts = {word: int(num) for num, word in
              (part.strip().split(" ")[:2] for part in summary.split(" in ")[0].split(",") if part.strip()[:1].isdigit())}
    return {"exit_status": proc.returncode, "summary": summary, "counts": counts}


def throughput(device: str, smoke: bool, timeout: float, batch: dict[str, int]) -> list[dict]:
    """Training images/s per preset and mode, each group in its own child process (see train_throughput.py)
    killed after ``timeout`` seconds (``compile``'s child gets a quarter more: it compiles first)."""
    from train_throughput import run_child

    presets = ["tiny"] if smoke else ["ipol64", "mae-base"]
    rows = []
    for preset in presets:
        groups = [["eager", "bf16"]] if smoke else [["eager", "fused", "bf16"], ["eager", "compile"]]
        for modes in groups:
            limit = timeout * (1.25 if "compile" in modes else 1.0)
            args = SimpleNamespace(batch_size=batch.get(preset, 8), steps=1 if smoke else 10,
                                   warmup=1 if smoke else 3, device=device, official_repo=None, timeout=limit)
            for row in run_child(preset, modes, args):
                if row["mode"] == "eager" and "compile" in modes:
                    continue  # the compile child's own reference
                rows.append({**row, "batch_size": args.batch_size})
    return rows


def analysis_speed(device: str, smoke: bool) -> dict:
    """Attention statistics' overhead over a plain forward, and the feature pass, images/s."""
    from torch.utils.data import TensorDataset

    from maelens import create_model
    from maelens.analysis.attention_dataset import attention_stats
    from maelens.analysis.features import extract_features

    preset, n = ("tiny", 16) if smoke else ("ipol64", 2048)
    model = create_model(preset).to(device).eval()
    size = model.config.img_size
    data = TensorDataset(torch.randn(n, 3, size, size), torch.zeros(n, dtype=torch.long))

    def timed(run: Callable[[], Any]) -> float:
        run()  # warm-up
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        run()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start

    @torch.no_grad()
    def forward() -> None:
        generator = torch.Generator().manual_seed(0)
        for k in range(0, n, 256):
            model(data.tensors[0][k:k + 256].to(device), 0.75, masking="grid", generator=generator)

    plain = timed(forward)
    stats = timed(lambda: attention_stats(model, data, batch_size=256, num_examples=0, device=device))
    features = timed(lambda: extract_features(model, data, batch_size=256, device=device, quiet=True))
    return {"preset": preset, "images": n, "forward_img_per_s": n / plain, "attention_stats_img_per_s": n / stats,
            "attention_stats_overhead": stats / plain - 1, "features_img_per_s": n / features}


def pretrain(device: str, smoke: bool, out: Path, budget_s: float, speed: float | None) -> dict:
    """``ipol64`` with the paper's recipe on generated images for about ``budget_s`` seconds; weights split."""
    from maelens.checkpoint.split import save_split
    from maelens.data import ImageDataset
    from maelens.models.presets import preset_recipe
    from maelens.train import TrainConfig, train

    recipe = preset_recipe("ipol64")
    n = 64 if smoke else 20000
    pixels, labels = generated_images(n, 64, seed=0, device=device)
    data = ImageDataset.from_arrays(pixels, labels, image_size=64, classes=SHAPES, train=True, name="generated")
    batch = 16 if smoke else 256
    rate = speed or 100.0  # images/s measured by the throughput stage (bf16 where it ran), else a guess
    epochs = 1 if smoke else max(3, min(recipe.epochs, int(budget_s * rate * 0.8 / n)))
    config = TrainConfig(preset="ipol64", epochs=epochs, batch_size=batch, blr=recipe.blr,
                         warmup_epochs=min(recipe.warmup_epochs, epochs / 2), schedule=recipe.schedule,
                         masking="random", mask_ratio=0.75, device=device, precision="auto", recon_images=0,
                         quiet=True, out=str(out / "run"), save_every=10**6)
    start = time.perf_counter()
    result = train(config, dataset=data)
    seconds = time.perf_counter() - start
    files = save_split(result.model, out)
    for path in (out / "run").glob("*"):  # only the split weights come back (at most 8 files)
        path.unlink()
    (out / "run").rmdir()
    return {"images": n, "epochs": epochs, "batch_size": batch, "seconds": seconds, "final_loss": result.final_loss,
            "losses": [r["loss"] for r in result.history], "images_per_s": [r["images_per_s"] for r in result.history],
            "precision": result.summary.get("precision"), "weights": [p.name for p in files],
            "recipe": {"blr": recipe.blr, "warmup_epochs": config.warmup_epochs, "schedule": recipe.schedule,
                       "paper_epochs": recipe.epochs, "source": recipe.source}}


def analyse(folder: Path, smoke: bool = False) -> dict:
    """On the CPU: load the split weights of ``folder``, then on held-out generated images (another seed) the
    reconstruction loss at 75% random masking, kNN / PCA + kNN accuracy of the mean-pooled features on the
    shape classes, and the decoder's attention consistency per layer (IPOL sec. 5)."""
    from maelens.analysis.attention_dataset import attention_stats
    from maelens.analysis.evaluate import evaluate_features
    from maelens.analysis.features import extract_features
    from maelens.checkpoint.split import load_split
    from maelens.data import ImageDataset

    model = load_split(folder)
    pixels, labels = generated_images(48 if smoke else 2000, model.config.img_size, seed=1)
    data = ImageDataset.from_arrays(pixels, labels, image_size=model.config.img_size, classes=SHAPES,
                                    name="generated (held out)")
    imgs = torch.stack([data[i][0] for i in range(len(data))])
    with torch.no_grad():
        loss = float(model(imgs, 0.75, generator=torch.Generator().manual_seed(0))[0])
    features = extract_features(model, data, pool="mean", quiet=True)
    evaluation = evaluate_features(features, None, ["knn", "pca-knn"], quiet=True)  # PCA axes: 50, fitted to the data
    attention = attention_stats(model, data, num_examples=0).to_frame()
    result = {"weights": str(folder), "preset": model.config.name, "images": len(data),
              "reconstruction_loss": loss, "evaluation": evaluation.to_dict()["results"],
              "attention": json.loads(attention.to_json(orient="records"))}
    from maelens.io import write_json

    write_json(folder / "analysis.json", result)
    return result


def machine(device: str) -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "device": device,
            "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count()}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true", help="the same stages at tiny sizes (CPU: about a minute)")
    parser.add_argument("--out", type=Path, default=None, help="where results go (default $OUT, else runs/gpu_check)")
    parser.add_argument("--budget-s", type=float, default=180.0, help="seconds of pretraining (at most)")
    parser.add_argument("--deadline-s", type=float, default=450.0,
                        help="the whole run's time: pretraining is shortened to end before it")
    parser.add_argument("--skip", nargs="*", default=[], choices=["tests", "throughput", "analysis_speed", "pretrain"])
    parser.add_argument("--analyse", type=Path, default=None, metavar="DIR",
                        help="load the split weights in DIR and analyse them (CPU), then stop")
    args = parser.parse_args(argv)
    if args.analyse is not None:
        result = analyse(args.analyse, args.smoke)
        print(json.dumps({k: result[k] for k in ("preset", "images", "reconstruction_loss")}))
        return 0
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: error: no CUDA device here; use --device cpu --smoke to try the script", file=sys.stderr)
        return 2
    out = args.out or Path(os.environ.get("OUT") or ROOT / "runs" / "gpu_check")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict[str, Any] = {"machine": machine(args.device), "smoke": args.smoke}
    if "tests" not in args.skip:
        stage(results, "tests", lambda: run_tests(out, timeout=60 if args.smoke else 90))
    rows = []
    if "throughput" not in args.skip:
        batch = {"tiny": 8} if args.smoke else {"ipol64": 256, "mae-base": 64}
        rows = stage(results, "throughput", lambda: throughput(args.device, args.smoke, 60, batch)) or []
    if "analysis_speed" not in args.skip:
        stage(results, "analysis_speed", lambda: analysis_speed(args.device, args.smoke))
    if "pretrain" not in args.skip:
        ipol = {r["mode"]: r.get("images_per_s") for r in rows if r.get("preset") == "ipol64" and r["status"] == "ok"}
        speed = ipol.get("bf16") or ipol.get("eager")
        # what is left of the deadline, less ~40 s for data, set-up and the split weights
        budget = max(30.0, min(args.budget_s, args.deadline_s - (time.perf_counter() - started) - 40))
        stage(results, "pretrain", lambda: pretrain(args.device, args.smoke, out, budget, speed))
    results["seconds"] = round(time.perf_counter() - started, 1)
    from maelens.io import write_json

    write_json(out / "gpu_check.json", results)
    failed = [name for name, r in results.items() if isinstance(r, dict) and str(r.get("status", "ok")) != "ok"]
    print(f"gpu_check: {results['seconds']} s; results in {out / 'gpu_check.json'}"
          + (f"; failed stages: {', '.join(failed)}" if failed else ""))
    return 1 if failed or math.isnan(results.get("pretrain", {}).get("result", {}).get("final_loss", 0.0)) else 0


if __name__ == "__main__":
    sys.exit(main())
