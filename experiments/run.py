"""Regenerate the paper's results: ``python experiments/run.py [NAME ...|all] [--quick|--full] [data options]``.

Each experiment writes CSV/JSON/PNG under ``OUT/NAME``; ``OUT/summary.csv`` and ``summary.md`` list
paper number, our number and the verdict on the paper's finding. The data options give the paper's own data
sets (or any ``--data`` value) for each role; without them the experiments use the data installed here.

``python experiments/run.py tables [--check]`` rewrites the results tables of experiments/README.md and
README.md from the committed result files under experiments/results/ (see ``tables.py``);
``python experiments/run.py collect RUN_DIR experiments/results/SCALE`` copies a run's result files there
(no checkpoints).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cae  # noqa: E402, F401 - registers the CAE study (issue 26) in EXPERIMENTS
from claims import render  # noqa: E402
from common import SCALES, Context  # noqa: E402
from paper import EXPERIMENTS  # noqa: E402
from segmentation_study import STUDIES  # noqa: E402

from maelens.errors import MaelensError  # noqa: E402
from maelens.io import write_csv, write_text  # noqa: E402

EXPERIMENTS = {**EXPERIMENTS, **STUDIES}


def verdict_text(outcome) -> str:
    """The outcome's verdict as the tables show it (word, interval, reason; see ``claims.render``)."""
    return render(outcome.verdict) if outcome.verdict is not None else outcome.holds


def summary_frame(outcomes) -> pd.DataFrame:
    """One row per outcome: the paper's number, ours, the verdict word and its full text."""
    return pd.DataFrame([{"experiment": o.name, "paper_ref": o.paper_ref, "paper": o.paper, "ours": o.ours,
                          "holds": o.holds, "verdict": verdict_text(o), "seconds": round(o.seconds, 1)}
                         for o in outcomes])


def _missing(spec: str | None) -> str | None:
    """Why ``spec`` cannot be a data set (a path that does not exist), checked before hours of training;
    None when it may be (the readers check the rest when the experiment needs it)."""
    if spec is None:
        return None
    from maelens.data.load import BUILTIN, CLASSES_OPTION

    base = spec.partition(CLASSES_OPTION)[0]
    if base.partition(":")[0] in BUILTIN + ("mosaic", "canvas") or Path(base).expanduser().exists():
        return None
    return f"{spec}: no such file or directory"


def tables_main(argv: list[str]) -> int:
    """``run.py tables [--check]``: regenerate (or check) the README results blocks."""
    from tables import write_tables

    parser = argparse.ArgumentParser(prog="run.py tables", description="write the README results tables from the "
                                                                       "committed result files")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a file would change")
    args = parser.parse_args(argv)
    try:
        changed = write_tables(check=args.check)
    except (OSError, ValueError, KeyError) as err:
        print(f"experiments tables: error: {err}", file=sys.stderr)
        return 2
    for path in changed:
        print(f"{'differs' if args.check else 'written'}: {path}")
    return 1 if args.check and changed else 0


def collect_main(argv: list[str]) -> int:
    """``run.py collect RUN_DIR DEST``: copy a run's result files (no checkpoints) to be committed."""
    from tables import collect

    parser = argparse.ArgumentParser(prog="run.py collect", description="copy a run's result files, no checkpoints")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("dest", type=Path)
    args = parser.parse_args(argv)
    if not args.run_dir.is_dir():
        print(f"experiments collect: error: {args.run_dir}: no such directory", file=sys.stderr)
        return 2
    written = collect(args.run_dir, args.dest)
    print(f"{len(written)} files copied to {args.dest}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["tables"]:
        return tables_main(argv[1:])
    if argv[:1] == ["collect"]:
        return collect_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=["all"], help=f"experiments: all or {', '.join(EXPERIMENTS)}")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--scale", choices=SCALES, default="quick",
                      help="quick: tiny preset, minutes on a CPU (default); paper-cpu: the paper's ipol64 model "
                           "and recipe on the photo tiles, sized for a CPU with bf16 (hours); full: the paper's "
                           "model and recipe for every model and its analysis sizes; its data sizes too when the "
                           "data options below give the paper's data sets (GPU)")
    mode.add_argument("--quick", dest="scale", action="store_const", const="quick", help="same as --scale quick")
    mode.add_argument("--full", dest="scale", action="store_const", const="full", help="same as --scale full")
    data = parser.add_argument_group(
        "data (any maelens --data value; default: the data installed here)",
        "The paper's setting: downsampled ImageNet 64x64 for pretraining, Places365's 4 classes for Table 3, the "
        "weather set for Table 4 and Fig. 7, ADE20K for the segmentation study (see experiments/README.md).")
    data.add_argument("--pretrain-data", metavar="SPEC",
                      help="pretraining images; their test split also feeds the reconstruction, attention and "
                           "similarity analyses (paper: a downsampled-ImageNet 64x64 directory, train_data_batch_* "
                           "+ val_data)")
    data.add_argument("--table3-data", metavar="SPEC",
                      help="labelled images of Table 3 / Fig. 13 and of the masking comparison (paper: "
                           "PLACES365_DIR:classes=airfield,amphitheater,aquarium,baseball_field)")
    data.add_argument("--table4-data", metavar="SPEC",
                      help="labelled images of Table 4; all of them are also Fig. 7's and Table 2's samples "
                           "(paper: the weather ImageFolder, 6,688 images of 11 classes)")
    data.add_argument("--segmentation-data", metavar="SPEC",
                      help="segmentation pairs of the Fig. 12 study (paper: an ADE20K folder, ADEChallengeData2016)")
    parser.add_argument("--out", type=Path, default=None, help="default: runs/experiments-SCALE")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    names = list(EXPERIMENTS) if args.names == ["all"] else args.names
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        parser.error(f"unknown experiment(s) {', '.join(unknown)}; choose from {', '.join(EXPERIMENTS)}")
    for option in ("pretrain_data", "table3_data", "table4_data", "segmentation_data"):
        problem = _missing(getattr(args, option))
        if problem:
            parser.error(f"--{option.replace('_', '-')} {problem}")
    out = args.out or Path("runs") / f"experiments-{args.scale}"
    ctx = Context(out=out, scale=args.scale, device=args.device, seed=args.seed, quiet=args.quiet,
                  pretrain=args.pretrain_data, table3=args.table3_data, table4=args.table4_data,
                  segmentation=args.segmentation_data)
    outcomes = []
    try:
        for name in names:
            outcome = EXPERIMENTS[name](ctx)
            outcomes.append(outcome)
            print(f"[{name}] {outcome.ours} | paper: {outcome.paper} | verdict: {verdict_text(outcome)} "
                  f"({outcome.seconds:.0f} s)", flush=True)
    except MaelensError as err:
        print(f"experiments: error: {err}", file=sys.stderr)
        return 2
    frame = summary_frame(outcomes)
    write_csv(out / "summary.csv", frame)
    lines = ["| experiment | paper | ours | verdict |", "|---|---|---|---|"]
    lines += [f"| {r.experiment} ({r.paper_ref}) | {r.paper} | {r.ours} | {r.verdict} |" for r in frame.itertuples()]
    write_text(out / "summary.md", "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
