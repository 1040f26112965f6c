"""``maelens report``: any maelens output folders (training runs, attention-stats, distfit, evaluate, cka,
rollout, probe-layers, token-stats, segment, compare) as one self-contained HTML page."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import preflight


def register(subparsers) -> None:
    """Add the ``report`` command."""
    cmd = subparsers.add_parser(
        "report", help="one self-contained HTML page of maelens output folders",
        description="Render maelens output folders (the --out of train, segment, attention-stats, distfit, evaluate, "
                    "cka, rollout, probe-layers, token-stats or compare) as one HTML page with the figures "
                    "embedded: per folder its settings, tables and figures, each figure with its caption; a "
                    "training run's loss and learning-rate curves.")
    cmd.add_argument("folders", nargs="+", type=Path, metavar="DIR", help="maelens output folders, in page order")
    cmd.add_argument("--out", type=Path, required=True, metavar="PAGE.html", help="the HTML page to write")
    cmd.add_argument("--title", default="maelens results", help="the page title (default: %(default)s)")
    cmd.add_argument("--quiet", action="store_true", help="print nothing on success")
    cmd.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    from ..io import write_text
    from ..report_folders import folders_report

    preflight(args, "file")
    report = folders_report(args.folders, title=args.title)
    write_text(args.out, report.to_html())
    if not args.quiet:
        print(f"wrote {args.out} ({len(args.folders)} folder(s))", file=sys.stderr)
    return 0
