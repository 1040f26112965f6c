"""``maelens compare``: the chosen analyses on several checkpoints with the same images and seed, one table
per metric (a row per model, 95% intervals) and a figure of each metric against the models."""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

from ..choices import COMPARE_ANALYSES as ANALYSES
from .common import add_data_args, add_overwrite_arg, add_run_args, preflight


def register(subparsers) -> None:
    """Add the ``compare`` command."""
    cmd = subparsers.add_parser(
        "compare", help="run analyses on several checkpoints and tabulate each metric per model",
        description="Load every --ckpt (paths, or globs such as 'runs/tiny/checkpoint-*.pt'), run the chosen "
                    "--analyses on each with the same images and seed, and write to --out one CSV per metric "
                    "(a row per model: value, 95% interval, items counted), a figure of each metric against the "
                    "models (against the training epoch when every checkpoint stores one) and comparison.json.")
    cmd.add_argument("--ckpt", nargs="+", required=True, metavar="PATH",
                     help="checkpoints or run folders (any format --ckpt takes elsewhere); a pattern with * ? [ ] is "
                          "expanded (quote it to let maelens sort it by epoch)")
    cmd.add_argument("--analyses", default=",".join(ANALYSES), type=_analyses, metavar="A,B",
                     help=f"comma-separated, from {', '.join(ANALYSES)} (default: all)")
    add_data_args(cmd)
    add_run_args(cmd)
    add_overwrite_arg(cmd)
    cmd.set_defaults(func=run_compare)


def _analyses(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in ANALYSES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"{', '.join(unknown) or 'none given'}; choose from {', '.join(ANALYSES)}")
    return names


def checkpoint_paths(patterns: list[str]) -> list[Path]:
    """The paths given, each pattern expanded (sorted); a pattern matching nothing or a path given twice is an error."""
    from ..errors import ConfigError

    paths: list[Path] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            found = sorted(glob.glob(pattern))
            if not found:
                raise ConfigError(f"--ckpt {pattern}: matches no file")
            paths += [Path(p) for p in found]
        else:
            paths.append(Path(pattern))
    seen = [p for i, p in enumerate(paths) if p in paths[:i]]
    if seen:
        raise ConfigError(f"--ckpt {seen[0]}: given twice")
    return paths


def labels_of(paths: list[Path]) -> list[str]:
    """Short distinct labels: the file or folder name, with its parent's name where names repeat."""
    names = [p.name for p in paths]
    return [f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name for p in paths]


def run_compare(args: argparse.Namespace) -> int:
    from ..analysis.compare import METRICS, ModelEntry, compare_models
    from ..checkpoint import load_checkpoint
    from ..data import load_dataset
    from ..io import output_folder, save_figure, to_json, write_csv, write_json
    from ..plots.compare import plot_metric
    from .eta import StageClock

    preflight(args, "dir")
    device = args.device
    paths = checkpoint_paths(args.ckpt)
    entries = []
    for path, label in zip(paths, labels_of(paths)):
        loaded = load_checkpoint(path, device)
        cfg = loaded.config
        data = load_dataset(args.data, image_size=cfg.img_size, split=args.split, limit=args.num_images,
                            seed=args.seed, mean=cfg.norm_mean, std=cfg.norm_std, quiet=True)
        entries.append(ModelEntry(label, loaded.model, data, loaded.epoch, {"checkpoint": loaded.settings()}))
    comparison = compare_models(entries, args.analyses, seed=args.seed, batch_size=args.batch_size, device=device,
                                num_workers=args.num_workers,
                                on_stage=StageClock("compare", args.quiet))
    comparison.settings.update(data=args.data, split=args.split, device=device)
    doc = comparison.to_dict()
    with output_folder(args.out, args.overwrite, command="maelens compare") as staging:
        for metric in comparison.metrics:
            table = comparison.table(metric)
            write_csv(staging / f"{metric}.csv", table)
            save_figure(plot_metric(table.to_dict(orient="records"), metric,
                                    title=f"{metric.replace('_', ' ')}, {comparison.settings['num_images']} images"),
                        staging / f"{metric}.png")
        write_json(staging / "comparison.json", doc)
    if args.json:
        print(to_json(doc))
    elif not args.quiet:
        for analysis in args.analyses:
            for metric in METRICS[analysis]:
                print(f"\n{metric}")
                print(comparison.table(metric).drop(columns=["interval"]).to_string(
                    index=False, float_format=lambda v: f"{v:.3f}", na_rep="n/a"))
        print(f"wrote {args.out}: one CSV and figure per metric, comparison.json", file=sys.stderr)
    return 0
