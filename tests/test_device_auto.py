"""``--device auto`` (issue 27) is every command's default: CUDA when present, else the CPU."""

import argparse

import torch

from maelens.cli import build_parser
from maelens.cli.common import check_device, preflight, resolve_device


def _commands():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def test_every_command_with_a_device_defaults_to_auto():
    with_device = {name: next((a for a in p._actions if "--device" in a.option_strings), None)
                   for name, p in _commands().items()}
    with_device = {name: action for name, action in with_device.items() if action is not None}
    assert {"train", "attention-stats", "influence-map", "rollout", "cka", "compare", "features", "evaluate",
            "reconstruct", "segment"} <= set(with_device)
    assert {name: action.default for name, action in with_device.items()} == {name: "auto" for name in with_device}


def test_auto_is_cuda_when_present_else_cpu_and_other_names_stay():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu" and resolve_device("cuda:1") == "cuda:1"
    check_device("auto")  # accepted everywhere


def test_preflight_resolves_auto_unless_the_command_does(tmp_path):
    args = argparse.Namespace(device="auto", out=None)
    preflight(args, None)
    assert args.device == resolve_device("auto")
    kept = argparse.Namespace(device="auto", out=None)
    preflight(kept, None, allow_auto=True)  # train and segment pick one GPU per torchrun rank themselves
    assert kept.device == "auto"
