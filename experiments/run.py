"""Regenerate the paper's results: ``python experiments/run.py [NAME ...|all] [--quick|--full]``.

Each experiment writes CSV/JSON/PNG under ``OUT/NAME``; ``OUT/summary.csv`` and ``summary.md`` list
paper number, our number and whether the finding holds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SCALES, Context  # noqa: E402
from paper import EXPERIMENTS  # noqa: E402

from maelens.errors import MaelensError  # noqa: E402
from maelens.io import write_csv, write_text  # noqa: E402


def summary_frame(outcomes) -> pd.DataFrame:
    return pd.DataFrame([{"experiment": o.name, "paper_ref": o.paper_ref, "paper": o.paper, "ours": o.ours,
                          "holds": o.holds, "seconds": round(o.seconds, 1)} for o in outcomes])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=["all"], help=f"experiments: all or {', '.join(EXPERIMENTS)}")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--scale", choices=SCALES, default="quick",
                      help="quick: tiny preset, minutes on a CPU (default); paper-cpu: the paper's ipol64 model "
                           "and recipe on the photo tiles, sized for a CPU with bf16 (hours); full: every size "
                           "at the paper's (GPU)")
    mode.add_argument("--quick", dest="scale", action="store_const", const="quick", help="same as --scale quick")
    mode.add_argument("--full", dest="scale", action="store_const", const="full", help="same as --scale full")
    parser.add_argument("--out", type=Path, default=None, help="default: runs/experiments-SCALE")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    names = list(EXPERIMENTS) if args.names == ["all"] else args.names
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        parser.error(f"unknown experiment(s) {', '.join(unknown)}; choose from {', '.join(EXPERIMENTS)}")
    out = args.out or Path("runs") / f"experiments-{args.scale}"
    ctx = Context(out=out, scale=args.scale, device=args.device, seed=args.seed, quiet=args.quiet)
    outcomes = []
    try:
        for name in names:
            outcome = EXPERIMENTS[name](ctx)
            outcomes.append(outcome)
            print(f"[{name}] {outcome.ours} | paper: {outcome.paper} | holds: {outcome.holds} "
                  f"({outcome.seconds:.0f} s)", flush=True)
    except MaelensError as err:
        print(f"experiments: error: {err}", file=sys.stderr)
        return 2
    frame = summary_frame(outcomes)
    write_csv(out / "summary.csv", frame)
    lines = ["| experiment | paper | ours | holds |", "|---|---|---|---|"]
    lines += [f"| {r.experiment} ({r.paper_ref}) | {r.paper} | {r.ours} | {r.holds} |" for r in frame.itertuples()]
    write_text(out / "summary.md", "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
