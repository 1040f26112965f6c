"""``maelens info --ckpt PATH``: format, architecture, parameter count, epoch and loss of a checkpoint."""

from __future__ import annotations

import argparse

from .common import add_checkpoint_arg, load_checkpoint_from_args


def register(subparsers) -> None:
    """Add the ``info`` command."""
    parser = subparsers.add_parser("info", help="describe a checkpoint (any supported format)",
                                   description="Describe a checkpoint: format, architecture, parameters, epoch, loss.")
    add_checkpoint_arg(parser)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    parser.add_argument("--allow-nonfinite", action="store_true",
                        help="describe a checkpoint whose weights hold NaN or inf instead of refusing it")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..checkpoint.summary import format_summary, summarize
    from ..io import to_json

    # describing a file needs no head count, and may look at broken weights when asked
    ckpt = load_checkpoint_from_args(args, "cpu", simclr=True, require_heads=False,
                                     allow_nonfinite=args.allow_nonfinite)
    info = summarize(ckpt)
    print(to_json(info) if args.json else format_summary(info))
    return 0
