"""The ``maelens`` command line: argument parsing only; every command calls library functions.

Each sub-command lives in its own module exposing ``register(subparsers)``; it sets
``func=handler`` where ``handler(args) -> int``. A :class:`MaelensError` becomes one line on
stderr and exit status 2; so does an argparse error (a bad option value is refused by its ``type=``
function in :mod:`.common`), through :class:`~.common.OneLineParser`, and :func:`main` returns that
status rather than raising SystemExit.

Start-up rule (issue 15): ``maelens --help``, ``maelens <command> --help`` and the commands that need no
model (``distfit --features-file``) must not import torch, timm or torchvision, which cost seconds. A
command module therefore imports torch, models, data loaders and analyses inside its handlers, never at
module level nor in ``register``; the choices and defaults its options need (presets, maskings, ...)
come from :func:`.names.library_literal`, which reads them from the library's source without importing
it. ``tests/test_startup.py`` builds the parser and prints every command's help in a fresh interpreter
and fails if any of those modules was imported. A new command only has to be listed in
``COMMAND_MODULES`` and follow this rule.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import MaelensError

COMMAND_MODULES = ("train", "info", "attention", "distfit", "evaluate", "data", "segment", "cka", "rollout", "layer_probes",
                   "token_stats", "compare", "report")


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every sub-command registered."""
    from .. import __version__
    from .common import OneLineParser

    # sub-command parsers inherit the class, so every argparse error is one line with exit status 2
    parser = OneLineParser(prog="maelens", description="Pretrain, load and dissect masked autoencoders.")
    parser.add_argument("--version", action="version", version=f"maelens {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f".{name}", __name__).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit status (argparse's too: 2 for a bad
    argument, after its one line on stderr, 0 after ``--help``), so callers never see SystemExit."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code is None else int(exc.code)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except MaelensError as err:
        from .common import cli_words

        print(f"maelens {args.command}: error: {cli_words(str(err))}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk outside maelens.io's writers (a log appended to, a library's file)
        from ..io import is_disk_full

        if not is_disk_full(err):
            raise
        print(f"maelens {args.command}: error: no space left on device while writing "
              f"{err.filename or 'the outputs'}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"maelens {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
