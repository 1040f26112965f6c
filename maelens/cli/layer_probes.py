"""``maelens probe-layers``: kNN and linear-probe accuracy of every encoder block, from one pass over the data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..choices import KNN_METRICS
from . import launch
from .common import (
    add_checkpoint_arg,
    add_data_args,
    add_overwrite_arg,
    add_run_args,
    fraction,
    load_checkpoint_from_args,
    non_negative_int,
    positive_int,
)

NORMS = {"both": (False, True), "raw": (False,), "norm": (True,)}


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def register(subparsers) -> None:
    """Add the ``probe-layers`` command."""
    probe = subparsers.add_parser(
        "probe-layers", help="kNN and linear-probe accuracy of every encoder block (accuracy against depth)",
        description="Record every encoder block's output in one pass over the data (mask ratio 0), pool it (mean "
                    "of the patch tokens and/or CLS, with and/or without the encoder's final LayerNorm) and score "
                    "each layer with the kNN vote (k = 20) and the linear probe of 'maelens evaluate', with 95% "
                    "Wilson intervals. --split test (default) fits on the dataset's train split and scores its test "
                    "split; --split train/all uses a stratified holdout. Writes layer_probes.csv, "
                    "layer_probes.json and layer_probes.png (accuracy against depth) to --out.")
    add_checkpoint_arg(probe)
    add_data_args(probe)
    probe.add_argument("--methods", type=_names, default=["knn", "linear"], metavar="LIST",
                       help="comma-separated, from: knn, pca-knn, linear (default: knn,linear)")
    probe.add_argument("--pools", type=_names, default=["mean", "cls"], metavar="LIST",
                       help="comma-separated, from: mean, cls (default: mean,cls)")
    probe.add_argument("--norm", default="both", choices=tuple(NORMS),
                       help="pool the raw block outputs, their final-LayerNorm version, or both (default: %(default)s)")
    probe.add_argument("--k", type=positive_int, default=None,
                       help="neighbours of the kNN vote (default: 20, or the training images when fewer)")
    probe.add_argument("--metric", default="cosine", choices=KNN_METRICS,
                       help="kNN distance (default: %(default)s)")
    probe.add_argument("--epochs", type=positive_int, default=None, metavar="E",
                       help="linear-probe training epochs (default: the probe's own, 100)")
    probe.add_argument("--folds", type=non_negative_int, default=0, metavar="F",
                       help="stratified F-fold cross-validation instead of one holdout (default: off)")
    probe.add_argument("--test-size", type=fraction, default=0.25, metavar="S",
                       help="held-out share with --split train/all (default: %(default)s)")
    add_run_args(probe)
    add_overwrite_arg(probe)
    probe.set_defaults(func=run_probe_layers)


def run_probe_layers(args: argparse.Namespace) -> int:
    from ..analysis.layer_probes import check_pools, check_probe_methods, layer_features, probe_layers
    from ..data import load_dataset
    from ..io import output_folder, save_figure, to_json, write_csv, write_json
    from ..plots.layers import plot_layer_probes

    splits = ["train", "test"] if args.split == "test" else [args.split]

    def setup():
        check_probe_methods(args.methods)
        check_pools(args.pools)
        loaded = load_checkpoint_from_args(args)
        cfg = loaded.model.config
        return loaded, [load_dataset(args.data, image_size=cfg.img_size, split=split, limit=args.num_images,
                                     seed=args.seed, mean=cfg.norm_mean, std=cfg.norm_std, quiet=args.quiet)
                        for split in splits]

    loaded, datasets = launch.prepare(args, "dir", setup)
    model, cfg = loaded.model, loaded.model.config
    sets = [layer_features(model, data, pools=args.pools, norms=NORMS[args.norm], batch_size=args.batch_size,
                           seed=args.seed, device=args.device, num_workers=args.num_workers, quiet=args.quiet)
            for data in datasets]
    train, test = sets[0], (sets[1] if len(sets) > 1 else None)
    params = {"linear": {"epochs": args.epochs}} if args.epochs and "linear" in args.methods else None
    report = probe_layers(train, test, args.methods, k=args.k, folds=args.folds, test_size=args.test_size,
                          seed=args.seed, params=params, device=args.device, quiet=args.quiet, metric=args.metric)
    if not launch.is_main():  # each rank scored a share of the variants; rank 0 writes and prints
        return 0
    report.settings.update(data=args.data, split=args.split, checkpoint=loaded.settings(), model=cfg.to_dict())
    frame = report.to_frame()
    out: Path = args.out
    with output_folder(out, args.overwrite, command="maelens probe-layers") as staging:
        write_csv(staging / "layer_probes.csv", frame)
        write_json(staging / "layer_probes.json", report.to_dict())
        save_figure(plot_layer_probes(report.rows, title=f"{Path(args.ckpt).name} on {args.data}"),
                    staging / "layer_probes.png")
    if args.json:
        print(to_json(report.to_dict()))
    elif not args.quiet:
        table = frame.pivot_table(index="layer", columns=["method", "pool", "norm"], values="accuracy", sort=False)
        print((100 * table).to_string(float_format=lambda v: f"{v:.1f}"))
        print(f"wrote {out}/layer_probes.csv, layer_probes.json and layer_probes.png", file=sys.stderr)
    return 0
