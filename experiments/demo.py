"""The main job (``make demo``): pretrain the ``tiny`` MAE on the bundled photographs (reusing the
checkpoint when present), run the attention, distribution and evaluation analyses on it, and write
``OUT/report.md`` and a self-contained ``OUT/report.html``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from claims import SCALE_NOTES  # noqa: E402
from common import Context  # noqa: E402
from paper import EXPERIMENTS  # noqa: E402
from run import summary_frame, verdict_text  # noqa: E402

from maelens.errors import MaelensError  # noqa: E402
from maelens.io import write_csv  # noqa: E402
from maelens.report import Report  # noqa: E402
from maelens.report_folders import caption_for  # noqa: E402

DEMO_EXPERIMENTS = ("reconstruction", "consistency", "attention-layers", "influence-maps", "positional-bias",
                    "synthetic-ks", "encoder-ks", "ranking", "similarity", "knn-table", "parametric")
TABLE_ROWS = 12


def build_report(ctx: Context, outcomes, seconds: float) -> Report:
    """Every table and figure of the run, each with its one-sentence reading."""
    report = Report("maelens demo report", root=ctx.out)
    report.text(f"A `{ctx.preset}` MAE pretrained {ctx.epochs} epochs on the `{ctx.pretrain_data}` images "
                f"(CPU, {seconds / 60:.1f} min in all), analysed as in Sarbout & Colom (IPOL). Labelled tables "
                f"use `{ctx.labelled_data}`. Numbers come from a small model trained for minutes, so they show "
                f"the analyses working, not the paper's values.")
    report.heading("Summary")
    report.table(summary_frame(outcomes).drop(columns=["seconds", "verdict"]),
                 caption="Each row: the paper's number, ours, and the verdict on the paper's finding here (holds / "
                         "tie / opposite / n/a, computed from an interval by maelens.verdict).")
    for outcome in outcomes:
        report.heading(f"{outcome.name} ({outcome.paper_ref})")
        report.text(f"Paper: {outcome.paper}. Ours: {outcome.ours}. Verdict: {verdict_text(outcome)}.")
        if outcome.holds != "holds" and outcome.name in SCALE_NOTES:
            report.text(f"Needs more scale: {SCALE_NOTES[outcome.name]}.")
        report.text(outcome.interpretation)
        for name, frame in outcome.tables.items():
            if len(frame) <= TABLE_ROWS:
                report.table(frame, caption=f"{name}.csv")
            else:
                report.text(f"`{outcome.name}/{name}.csv`: {len(frame)} rows (not shown).")
        for path in outcome.figures.values():
            report.figure(path, caption=caption_for(Path(path).name, "demo"))  # what this figure draws
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    ctx = Context(out=args.out, scale="quick", device=args.device, seed=args.seed, quiet=args.quiet)
    start = time.perf_counter()
    outcomes = []
    try:
        for name in DEMO_EXPERIMENTS:
            outcome = EXPERIMENTS[name](ctx)
            outcomes.append(outcome)
            print(f"[{name}] {outcome.ours} | verdict: {verdict_text(outcome)}", flush=True)
    except MaelensError as err:
        print(f"demo: error: {err}", file=sys.stderr)
        return 2
    write_csv(ctx.out / "summary.csv", summary_frame(outcomes))
    md, page = build_report(ctx, outcomes, time.perf_counter() - start).write(ctx.out / "report.md",
                                                                            ctx.out / "report.html")
    print(f"report: {md} and {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
