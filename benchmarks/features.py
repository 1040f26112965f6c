"""Throughput of the feature pass (``extract_features``, what ``maelens features`` and ``maelens evaluate
--ckpt`` run) against a plain forward of the encoder over the same batches, and of the evaluation that
follows (``evaluate_features``: kNN and PCA + kNN, the default methods without t-SNE).

    .venv/bin/python benchmarks/features.py [--preset ipol64] [--images 2000] [--eval-images 20000]

Both passes iterate the same DataLoader over the same synthetic images (random pixels, random labels,
random weights: the cost does not depend on what the pixels show), without masking, alternately, the
fastest of ``--repeats`` kept for each (interference only adds time). Wall time and process CPU time.
The evaluation runs on ``--eval-images`` synthetic feature vectors of the model's width (a Gaussian
mixture of 10 classes), so that its size need not wait for a 20,000-image feature pass; the evaluation
of N images costs the feature pass (N / images/s) plus that time.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from _timing import interleaved
from torch.utils.data import DataLoader, TensorDataset

from maelens.analysis.evaluate import evaluate_features
from maelens.analysis.features import FeatureSet, extract_features
from maelens.models import create_model


@torch.no_grad()
def plain_forward(model: torch.nn.Module, dataset: TensorDataset, batch_size: int) -> None:
    """The encoder alone over the dataset, every patch kept, outputs dropped."""
    for imgs, _ in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        model.encode(imgs, 0.0)


def bench_features(preset: str, images: int, batch_size: int, repeats: int, pools: list[str]) -> dict:
    torch.manual_seed(0)
    model = create_model(preset).eval()
    size = model.config.img_size
    dataset = TensorDataset(torch.randn(images, 3, size, size), torch.randint(0, 10, (images,)))
    runs = {"forward": lambda: plain_forward(model, dataset, batch_size)}
    for pool in pools:
        runs[f"features_{pool}"] = (lambda p: lambda: extract_features(model, dataset, pool=p, batch_size=batch_size,
                                                                       quiet=True))(pool)
    wall, cpu = interleaved(runs, repeats)
    out = {"preset": preset, "images": images, "batch_size": batch_size, "threads": torch.get_num_threads(),
           "repeats": repeats, "forward_img_per_s": round(images / min(wall["forward"]), 1)}
    for pool in pools:
        name = f"features_{pool}"
        out[f"{name}_img_per_s"] = round(images / min(wall[name]), 1)
        out[f"{name}_vs_forward_wall"] = round(min(wall[name]) / min(wall["forward"]), 3)
        out[f"{name}_vs_forward_cpu"] = round(min(cpu[name]) / min(cpu["forward"]), 3)
    return out


def bench_evaluate(n: int, dim: int, seed: int = 0) -> dict:
    """``evaluate_features`` (kNN, PCA + kNN; 25% held out) on n synthetic feature vectors."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    centres = rng.standard_normal((10, dim)).astype(np.float32)
    feats = centres[labels] + 2.0 * rng.standard_normal((n, dim)).astype(np.float32)
    fs = FeatureSet(features=feats, labels=labels.astype(np.int64), ids=np.arange(n).astype(str))
    wall, cpu = interleaved({"evaluate": lambda: evaluate_features(fs, None, ["knn", "pca-knn"], quiet=True)}, 1,
                            warmup=False)
    return {"eval_images": n, "dim": dim, "evaluate_knn_pca_knn_s": round(wall["evaluate"][0], 2),
            "evaluate_cpu_s": round(cpu["evaluate"][0], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="ipol64")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pools", nargs="+", default=["mean", "flatten"])
    parser.add_argument("--eval-images", type=int, default=20000, help="feature vectors for the evaluation timing")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    result = bench_features(args.preset, args.images, args.batch_size, args.repeats, args.pools)
    print(json.dumps(result), flush=True)
    if args.eval_images:
        dim = create_model(args.preset).config.embed_dim
        evaluation = bench_evaluate(args.eval_images, dim)
        per_image = 1.0 / result["features_mean_img_per_s"] if "features_mean_img_per_s" in result else None
        if per_image is not None:
            total = args.eval_images * per_image + evaluation["evaluate_knn_pca_knn_s"]
            evaluation["evaluate_with_features_img_per_s_extrapolated"] = round(args.eval_images / total, 1)
        print(json.dumps(evaluation), flush=True)


if __name__ == "__main__":
    main()
