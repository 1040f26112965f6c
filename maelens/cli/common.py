"""Arguments shared by several sub-commands, and the helpers that turn them into library calls."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..models.masking import MASKINGS


def add_checkpoint_arg(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--ckpt", required=required, metavar="PATH",
                        help="checkpoint: maelens .pt, official MAE .pth, Hugging Face ViTMAE folder, or timm encoder weights")


def add_data_args(parser: argparse.ArgumentParser, default: str = "bundled") -> None:
    parser.add_argument("--data", default=default, metavar="SPEC",
                        help="bundled | photos | backgrounds | fashion-mnist | an ImageFolder directory | a CIFAR batches directory | a .npz file (default: %(default)s)")
    parser.add_argument("--split", default="test", choices=("train", "test", "all"),
                        help="which split of the data to use (default: %(default)s)")
    parser.add_argument("--num-images", type=int, default=None, metavar="N", help="use at most N images")
    parser.add_argument("--batch-size", type=int, default=64, metavar="B")
    parser.add_argument("--num-workers", type=int, default=0, metavar="W", help="data loader worker processes")


def add_mask_args(parser: argparse.ArgumentParser, default_mask: str = "random", default_ratio: float = 0.75) -> None:
    parser.add_argument("--mask", default=default_mask, choices=MASKINGS, help="masking strategy (default: %(default)s)")
    parser.add_argument("--mask-ratio", type=float, default=default_ratio, metavar="R",
                        help="fraction of patches removed (default: %(default)s)")


def add_run_args(parser: argparse.ArgumentParser, out_required: bool = True, out_help: str = "output directory",
                 out_metavar: str = "DIR") -> None:
    parser.add_argument("--out", type=Path, required=out_required, metavar=out_metavar, help=out_help)
    parser.add_argument("--json", action="store_true", help="print the JSON summary to stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or tables")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1 (default: %(default)s)")
