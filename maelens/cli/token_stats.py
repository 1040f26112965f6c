"""``maelens token-stats``: per-layer token-norm distributions and high-norm outlier tokens."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..choices import LAYER_PART_CHOICES
from . import launch
from .common import (
    add_checkpoint_arg,
    add_data_args,
    add_overwrite_arg,
    add_run_args,
    load_checkpoint_from_args,
    non_negative_float,
    positive_int,
)


def register(subparsers) -> None:
    """Add the ``token-stats`` command."""
    stats = subparsers.add_parser(
        "token-stats", help="token-norm distribution per layer, share of high-norm outlier tokens by layer and position",
        description="Record the L2 norm of every block output token over the data (every patch visible) and report, "
                    "per layer, the distribution of the patch tokens' norms, the share above the robust threshold "
                    "median + k * 1.4826 * MAD (high-norm outliers, Darcet et al. 2024), the share per patch position "
                    "with a chi-square test of equal shares, and the CLS token's norm. Writes token_stats.csv (one row "
                    "per layer), token_stats.json, token_stats.npz (position maps, histograms) and token_stats.png.")
    add_checkpoint_arg(stats)
    add_data_args(stats)
    stats.add_argument("--parts", default="encoder", choices=LAYER_PART_CHOICES,
                       help="blocks measured; auto adds the decoder where the model has one (default: %(default)s)")
    stats.add_argument("--k", type=non_negative_float, default=3.0,
                       help="outlier threshold in robust standard deviations above the median (default: %(default)s)")
    stats.add_argument("--bins", type=positive_int, default=50, help="histogram bins (default: %(default)s)")
    add_run_args(stats)
    add_overwrite_arg(stats)
    stats.set_defaults(func=run_token_stats)


def run_token_stats(args: argparse.Namespace) -> int:
    from ..analysis.layer_outputs import resolve_parts
    from ..analysis.token_stats import token_stats
    from ..data import load_dataset
    from ..io import output_folder, save_figure, save_npz, to_json, write_csv, write_json, write_text
    from ..plots.layers import plot_token_stats

    def setup():
        loaded = load_checkpoint_from_args(args)
        cfg = loaded.model.config
        return loaded, resolve_parts(loaded.model, args.parts), load_dataset(
            args.data, image_size=cfg.img_size, split=args.split, limit=args.num_images, seed=args.seed,
            mean=cfg.norm_mean, std=cfg.norm_std, quiet=args.quiet)

    loaded, parts, dataset = launch.prepare(args, "dir", setup)
    model = loaded.model
    report = token_stats(model, dataset, parts=parts, k=args.k, bins=args.bins, batch_size=args.batch_size,
                         device=args.device, num_workers=args.num_workers, quiet=args.quiet)
    if not launch.is_main():  # rank 0 writes and prints
        return 0
    report.settings.update(data=args.data, split=args.split, checkpoint=loaded.settings())
    frame = report.to_frame()
    columns = ["layer", "median", "mad", "threshold", "max", "outlier_share", "border_share", "interior_share",
               "position_uniform_p", "cls_mean"]
    text = frame[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}")
    out: Path = args.out
    with output_folder(out, args.overwrite, command="maelens token-stats") as staging:
        write_csv(staging / "token_stats.csv", frame)
        write_json(staging / "token_stats.json", report.to_dict())
        save_npz(staging / "token_stats.npz", **report.arrays())
        save_figure(plot_token_stats(report.layers, report.hist_counts, report.hist_edges, report.position_share,
                                     title=f"{Path(args.ckpt).name}: token norms, k = {args.k:g}"),
                    staging / "token_stats.png")
        write_text(staging / "token_stats.txt", text + "\n")
    if args.json:
        print(to_json(report.to_dict()))
    elif not args.quiet:
        print(text)
        print(f"wrote {out}/token_stats.csv, token_stats.json, token_stats.npz and token_stats.png", file=sys.stderr)
    return 0
