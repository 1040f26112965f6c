"""Arguments shared by several sub-commands, and the helpers that turn them into library calls."""

from __future__ import annotations

import argparse
import errno
import glob
import math
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Callable, NoReturn

from ..choices import MASKINGS, SPLITS
from ..errors import ConfigError

#: Help of every ``--device``: ``auto`` is the default everywhere (:func:`resolve_device`).
DEVICE_HELP = "torch device: auto (CUDA when present, else CPU), cpu, cuda, cuda:1 (default: %(default)s)"


def positive_heads(text: str) -> int:
    """argparse type of ``--num-heads``: a positive integer (that it divides the width is checked at load)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def image_size_arg(text: str) -> int:
    """argparse type of ``--image-size``: a positive integer (that the patch size divides it is checked at load)."""
    return positive_heads(text)


def add_checkpoint_arg(parser: argparse.ArgumentParser, required: bool = True,
                       options: argparse.ArgumentParser | None = None) -> None:
    """``--ckpt`` and what a state dict cannot say (issue 13): the two head counts, a timm architecture, an
    input size other than the checkpoint's; ``options`` is where these flags go when ``parser`` is a
    mutually exclusive group (default: ``parser``)."""
    parser.add_argument("--ckpt", required=required, metavar="PATH",
                        help="checkpoint: maelens .pt, official MAE .pth (pretrained, visualize, fine-tuned, "
                             "linear-probe), Hugging Face ViTMAE folder, encoder weights, or timm weights with --arch")
    options = options if options is not None else parser
    options.add_argument("--num-heads", type=positive_heads, default=None, metavar="H",
                        help="encoder attention heads, for files that do not store them (must divide the width); "
                             "overrides a stored value")
    options.add_argument("--decoder-num-heads", type=positive_heads, default=None, metavar="H",
                        help="decoder attention heads, for files that do not store them")
    options.add_argument("--arch", default=None, metavar="timm:NAME",
                        help="build this timm Vision Transformer (e.g. timm:vit_base_patch16_224, no download) and "
                             "load --ckpt into it; analysed as an encoder")
    options.add_argument("--image-size", type=image_size_arg, default=None, metavar="N",
                        help="run on NxN inputs instead of the checkpoint's size: sin-cos position tables are "
                             "regenerated, learned ones resampled bicubically (recorded in the settings)")


def load_checkpoint_from_args(args: argparse.Namespace, device: str | None = None, *, simclr: bool = False,
                              **kwargs):
    """The :class:`~maelens.checkpoint.LoadedCheckpoint` of ``--ckpt`` with the head-count, ``--arch`` and
    ``--image-size`` options; a SimCLR model is refused (a ConfigError) unless the command takes one (``simclr``)."""
    from ..checkpoint import load_checkpoint

    loaded = load_checkpoint(args.ckpt, device if device is not None else getattr(args, "device", "cpu"),
                             num_heads=args.num_heads, decoder_num_heads=args.decoder_num_heads,
                             arch=getattr(args, "arch", None), image_size=getattr(args, "image_size", None), **kwargs)
    if loaded.method == "simclr" and not simclr:  # a CAE's encoder is MAE's: encoder analyses take it
        raise ConfigError(f"--ckpt {args.ckpt} holds a SimCLR model, and this command needs an MAE "
                          f"(a SimCLR checkpoint works with info, features and evaluate)")
    return loaded


def add_data_args(parser: argparse.ArgumentParser, default: str = "bundled") -> None:
    parser.add_argument("--data", default=default, metavar="SPEC",
                        help="bundled | photos | backgrounds | fashion-mnist | an ImageFolder directory | a CIFAR, downsampled-ImageNet or Places365 file-list directory | a .npz file; SPEC:classes=A,B keeps those classes (default: %(default)s)")
    parser.add_argument("--split", default="test", choices=SPLITS,
                        help="which split of the data to use (default: %(default)s)")
    parser.add_argument("--num-images", type=positive_int, default=None, metavar="N", help="use at most N images")
    parser.add_argument("--batch-size", type=positive_int, default=64, metavar="B")
    parser.add_argument("--num-workers", type=non_negative_int, default=0, metavar="W",
                        help="data loader worker processes")


def add_mask_args(parser: argparse.ArgumentParser, default_mask: str = "random", default_ratio: float = 0.75) -> None:
    parser.add_argument("--mask", default=default_mask, choices=MASKINGS, help="masking strategy (default: %(default)s)")
    parser.add_argument("--mask-ratio", type=finite_float, default=default_ratio, metavar="R",
                        help="fraction of patches removed (default: %(default)s)")


def add_run_args(parser: argparse.ArgumentParser, out_required: bool = True, out_help: str = "output directory",
                 out_metavar: str = "DIR") -> None:
    parser.add_argument("--out", type=Path, required=out_required, metavar=out_metavar, help=out_help)
    parser.add_argument("--json", action="store_true", help="print the JSON summary to stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or tables")
    parser.add_argument("--seed", type=seed_int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)


def add_overwrite_arg(parser: argparse.ArgumentParser) -> None:
    """``--overwrite`` of the commands that write a folder of outputs (see :func:`maelens.io.output_folder`)."""
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an --out folder that already holds the outputs of a maelens command, as a "
                             "whole (without it such a folder is refused, so old and new files never mix)")


# ---- option value types: argparse reports a bad value itself (one line, exit status 2) ----------

def _number_type(convert: Callable[[str], float], accept: Callable[[float], bool], expected: str,
                 name: str) -> Callable[[str], float]:
    """An argparse ``type=`` that converts with ``convert`` and refuses values ``accept`` rejects,
    with a message saying what was ``expected`` and what was given."""

    def parse(text: str):
        try:
            value = convert(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value

    parse.__name__ = name
    return parse


#: Largest seed accepted: every generator seeded from it (torch, numpy, Python) takes 63 bits.
MAX_SEED = 2**63 - 1
positive_int = _number_type(int, lambda v: v >= 1, "a positive integer", "positive_int")
non_negative_int = _number_type(int, lambda v: v >= 0, "an integer >= 0", "non_negative_int")
seed_int = _number_type(int, lambda v: 0 <= v <= MAX_SEED, "an integer in [0, 2**63)", "seed_int")
finite_float = _number_type(float, math.isfinite, "a finite number", "finite_float")
positive_float = _number_type(float, lambda v: math.isfinite(v) and v > 0, "a finite number > 0", "positive_float")
non_negative_float = _number_type(float, lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0",
                                  "non_negative_float")
fraction = _number_type(float, lambda v: 0 < v < 1, "a number in (0, 1)", "fraction")


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr, ``PROG: error: MESSAGE``, and exit status 2
    (argparse's usage block would make them several), as the README promises for every command."""

    def error(self, message: str) -> NoReturn:
        # under torchrun every rank parses the same arguments: rank 0 alone says what is wrong
        rank = int(os.environ.get("RANK", "0") or 0) if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 else 0
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n" if rank == 0 else None)


def note(args: argparse.Namespace, message: str) -> None:
    """Say once on stderr that a default was adapted to the other options (silent with ``--quiet`` and
    on the non-zero ranks of a ``torchrun`` run)."""
    if getattr(args, "quiet", False) or int(os.environ.get("RANK", "0")) != 0:
        return
    print(f"maelens {args.command}: note: {cli_words(message)}", file=sys.stderr)


def warning(args: argparse.Namespace, message: str) -> None:
    """Say on stderr that a set-up is known to be slow or useless (:mod:`maelens.setup_warnings`): shown
    even with ``--quiet``, on rank 0 of a ``torchrun`` run only."""
    if int(os.environ.get("RANK", "0")) != 0:
        return
    print(f"maelens {args.command}: warning: {cli_words(message)}", file=sys.stderr)


# ---- checks made before any work: a bad device or output location fails in a second, not after an hour ----

def check_device(name: str, *, allow_auto: bool = True) -> None:
    """Refuse a ``--device`` this machine cannot use (unknown name, no GPU, a GPU index beyond the count)
    with a ConfigError naming it, before any model or data is loaded (torch is imported only here, and not
    for ``cpu``: commands that never load a model, such as ``distfit --features-file``, start without it)."""
    if name == "cpu" or (allow_auto and name == "auto"):
        return
    import torch

    expected = "cpu, cuda, cuda:N" + (" or auto" if allow_auto else "")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError(f"--device {name}: not a torch device (expected {expected})") from None
    if device.type == "cpu":
        return
    if device.type == "cuda":
        _check_cuda(name, device.index)
        return
    backend = getattr(torch.backends, device.type, None) or getattr(torch, device.type, None)
    available = getattr(backend, "is_available", None)
    if available is None or not available():
        raise ConfigError(f"--device {name}: the {device.type} backend is not available on this machine "
                          f"(expected {expected})")


def resolve_device(name: str) -> str:
    """``auto`` (the default ``--device``): ``cuda`` when a CUDA GPU is usable, else ``cpu``; any other name
    unchanged. torch is asked only where the kernel shows an NVIDIA device (``/dev/nvidia*``), so the
    commands that run no model (``distfit --features-file``) still start without torch on a CPU machine."""
    if name != "auto":
        return name
    if not glob.glob("/dev/nvidia[0-9]*") and "torch" not in sys.modules:
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _check_cuda(name: str, index: int | None) -> None:
    import torch

    if not torch.cuda.is_available():
        why = "this PyTorch build has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise ConfigError(f"--device {name}: CUDA is not available on this machine ({why}); use --device cpu")
    count = torch.cuda.device_count()
    if index is not None and index >= count:
        raise ConfigError(f"--device {name}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")


def figure_formats() -> tuple[str, ...]:
    """File extensions matplotlib can save figures as (png, pdf, svg, ...), without the dot."""
    from matplotlib.backend_bases import FigureCanvasBase

    return tuple(sorted(FigureCanvasBase.get_supported_filetypes()))


def check_out_dir(path: Path, option: str = "--out") -> None:
    """An output directory: an existing directory or one that can be created, and writable."""
    if os.path.lexists(path) and not os.path.isdir(path):
        raise ConfigError(f"{option} {path}: exists and is not a directory (this command writes several files "
                          f"into a directory)")
    _check_writable(path, option)


def check_out_file(path: Path, option: str = "--out", example: str = "out.npz") -> None:
    """An output file: not an existing directory, and its folder writable or creatable."""
    if os.path.isdir(path):
        raise ConfigError(f"{option} {path}: is a directory, but this command writes one file "
                          f"(e.g. {Path(path) / example})")
    _check_writable(Path(path).parent, option, shown=path)


def check_figure_path(path: Path, option: str = "--out") -> None:
    """A figure file: an extension matplotlib can write (none means PNG), then as :func:`check_out_file`."""
    suffix = Path(path).suffix.lower().lstrip(".")
    formats = figure_formats()
    if suffix and suffix not in formats:
        raise ConfigError(f"{option} {path}: figures cannot be saved as .{suffix}; supported extensions: "
                          + ", ".join(f".{f}" for f in formats))
    check_out_file(path, option, example="figure.png")


def _check_writable(folder: Path, option: str, shown: Path | None = None) -> None:
    """Raise a ConfigError unless ``folder`` exists as a writable directory or can be created: probed by
    creating and removing an empty hidden directory in its nearest existing ancestor (permission bits
    do not tell, e.g. for root or under /proc)."""
    shown = folder if shown is None else shown
    ancestor = next((p for p in (folder, *folder.parents) if os.path.lexists(p)), None)
    if ancestor is None:
        raise ConfigError(f"{option} {shown}: none of its folders exists")
    if not os.path.isdir(ancestor):
        raise ConfigError(f"{option} {shown}: {ancestor} is a file, not a directory")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".maelens-probe-", dir=ancestor))
    except OSError as err:
        reason = "it accepts no new files" if err.errno == errno.ENOENT else err.strerror
        where = "" if ancestor == shown else f" in {ancestor}"
        raise ConfigError(f"{option} {shown}: cannot write{where} ({reason})") from None


def preflight(args: argparse.Namespace, out: str | None = "dir", *, allow_auto: bool = False) -> None:
    """The checks every command makes before loading anything: ``--device`` exists here (``auto`` is resolved
    to ``cuda`` or ``cpu`` by :func:`resolve_device` unless ``allow_auto``: the command resolves it) and ``--out``
    can be written as ``out`` says (``dir``, ``file``, ``figure`` or None); an output folder that
    already holds files needs ``--overwrite`` (commands that have the option)."""
    if getattr(args, "device", None) is not None:
        check_device(args.device)
        if not allow_auto:  # commands that resolve auto themselves (train, segment: one GPU per rank) keep it
            args.device = resolve_device(args.device)
    warn_slow_paths(args)
    path = getattr(args, "out", None)
    if path is None or out is None:
        return
    checks = {"dir": check_out_dir, "file": check_out_file, "figure": check_figure_path}
    checks[out](Path(path))
    if out == "dir" and hasattr(args, "overwrite"):  # a command writing its outputs with output_folder
        from ..io import check_output_folder

        check_output_folder(Path(path), args.overwrite)


def warn_slow_paths(args: argparse.Namespace) -> None:
    """Say once, before any work, when a value given forces a known slow path (issue 30): ``--precision bf16``
    on a CPU without native bfloat16 (AVX512-BF16 or AMX), where it is emulated and runs about 15 times
    slower than float32. The value is used as given, never replaced."""
    if getattr(args, "precision", None) != "bf16":
        return
    device = getattr(args, "device", "cpu") or "cpu"
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if not device.startswith("cpu"):
        return
    from ..train.precision import cpu_bf16_flags

    if not cpu_bf16_flags():
        note(args, "--precision bf16 on this CPU is emulated (it has no AVX512-BF16 or AMX instructions) and runs "
                   "about 15x slower than float32; used as given (--precision auto would pick float32 here)")


#: Library parameters that error messages name (``image_size=30``, ``overwrite=True``, ``batch_size``) and the
#: command-line flags they are set by: the library speaks Python, :func:`cli_words` translates for the CLI.
PARAMETER_FLAGS = {name: "--" + name.replace("_", "-") for name in (
    "arch", "image_size", "num_heads", "decoder_num_heads", "device", "resume", "out", "overwrite", "batch_size",
    "accum_iter", "epochs", "warmup_epochs", "preset", "blr", "lr", "clip_grad", "precision", "top_n", "data",
    "method", "folds", "pca_dim")}
_ASSIGNED = re.compile(r"(?<![\w./='-])(" + "|".join(sorted(PARAMETER_FLAGS, key=len, reverse=True)) + r")=([^\s,;)]*)")
_BARE = re.compile(r"(?<![\w./='-])(" + "|".join(n for n in PARAMETER_FLAGS if "_" in n) + r")(?![\w='])")


def cli_words(message: str) -> str:
    """A library message as the command line says it: ``image_size=30`` becomes ``--image-size 30``,
    ``overwrite=True`` becomes ``--overwrite``, and a bare ``batch_size`` becomes ``--batch-size`` (only names
    with an underscore are translated bare: they cannot be ordinary words). A quoted ``'image_size'`` is a field
    read from a file (:mod:`maelens.validation`), not the flag, and is left as it is."""
    def assigned(match: re.Match) -> str:
        flag, value = PARAMETER_FLAGS[match.group(1)], match.group(2)
        return flag if value == "True" else f"{flag} {value}"

    return _BARE.sub(lambda m: PARAMETER_FLAGS[m.group(1)], _ASSIGNED.sub(assigned, message))



