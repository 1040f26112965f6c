"""The ``maelens`` command line: argument parsing only; every command calls library functions.

Each sub-command lives in its own module exposing ``register(subparsers)``; it sets
``func=handler`` where ``handler(args) -> int``. A :class:`MaelensError` becomes one line on
stderr and exit status 2; so does an argparse error (a bad option value is refused by its ``type=``
function in :mod:`.common`), through :class:`~.common.OneLineParser`, and :func:`main` returns that
status rather than raising SystemExit.

Start-up rule (issue 15): ``maelens --help``, ``maelens <command> --help`` and the commands that need no
model (``distfit --features-file``) must not import torch, timm or torchvision, which cost seconds. A
command module therefore imports torch, models, data loaders and analyses inside its handlers, never at
module level nor in ``register``; the choices and defaults its options need come from the library's
torch-free modules: :mod:`maelens.choices` (maskings, splits, methods, ...), the presets
(:mod:`maelens.models.presets`) and the run configurations (:class:`~maelens.train.config.TrainConfig`,
:class:`~maelens.segmentation.config.SegmentConfig`), whose packages load their other names lazily. ``tests/test_startup.py`` builds the parser and prints every command's help in a fresh interpreter
and fails if any of those modules was imported. A new command only has to be listed in
``COMMAND_MODULES`` and follow this rule.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys

from ..errors import MaelensError

COMMAND_MODULES = ("train", "info", "attention", "distfit", "evaluate", "data", "segment", "cka", "rollout", "layer_probes",
                   "token_stats", "compare", "report")


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every sub-command registered."""
    from .._version import __version__
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
    from . import launch

    try:
        return int(args.func(args) or 0)
    except MaelensError as err:
        from .common import cli_words

        # under torchrun a failure met at a synchronisation point is known to every rank: rank 0 says it
        if launch.is_main() or not _synchronised(err):
            return _fail(args.command, cli_words(str(err)))
        return 2
    except MemoryError as err:  # a size no check above foresaw: numpy's message says how much and for what
        return _fail(args.command, f"out of memory: {str(err) or 'an allocation failed'}")
    except RuntimeError as err:  # torch's allocators say it with a RuntimeError (CUDA OOM, DefaultCPUAllocator)
        if not _torch_out_of_memory(err):
            raise
        return _fail(args.command, f"out of memory: {str(err).strip().splitlines()[0][:200]}")
    except OSError as err:  # the system refused one of our paths: a full disk, permissions, a name too long
        from ..io import is_disk_full
        from ..paths import os_refusal

        if is_disk_full(err):
            return _fail(args.command, f"no space left on device while writing {err.filename or 'the outputs'}")
        if err.filename is None:
            raise
        return _fail(args.command, os_refusal(err))
    except KeyboardInterrupt:
        print(f"maelens {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        launch.leave()


def _synchronised(err: MaelensError) -> bool:
    """Whether ``err`` was raised on every rank of a distributed analysis (a DistributedError)."""
    from ..analysis.distributed import DistributedError

    return isinstance(err, DistributedError)


def _fail(command: str, message: str) -> int:
    """Print ``maelens COMMAND: error: MESSAGE`` as one line (control characters escaped: a path holding a
    newline must not break it, issue 30) and return exit status 2."""
    from ..validation import escape

    print(f"maelens {command}: error: {escape(worker_message(message))}", file=sys.stderr)
    return 2


def _torch_out_of_memory(err: RuntimeError) -> bool:
    """Whether ``err`` is torch failing to allocate (a GPU's ``OutOfMemoryError``, or the CPU allocator)."""
    return type(err).__name__ == "OutOfMemoryError" or "can't allocate memory" in str(err)


_RAISED = re.compile(r"^(?:[\w.]+\.)?\w+: ")


def worker_message(message: str) -> str:
    """The error's own message when it was raised in a DataLoader worker process: torch re-raises it in the
    main process with "Caught X in DataLoader worker process N" and the worker's whole traceback as its text;
    only the last line (the original message, without its class name) is kept (issue 30)."""
    if "\nOriginal Traceback" not in message:
        return message
    last = next((line for line in reversed(message.strip().splitlines()) if line.strip()), message)
    return _RAISED.sub("", last.strip(), count=1)


if __name__ == "__main__":
    sys.exit(main())
