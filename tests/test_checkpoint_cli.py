"""``maelens info``: table and JSON summaries, one-line errors with exit status 2."""

import json
import os
import subprocess
import sys

import torch

from maelens import create_model
from maelens.checkpoint import save_checkpoint
from maelens.cli import main

from test_checkpoint import Evil


def test_info_prints_format_architecture_parameters_and_epoch(tmp_path, capsys):
    path = save_checkpoint(tmp_path / "tiny.pt", create_model("tiny", norm_pix_loss=True), epoch=7)
    assert main(["info", "--ckpt", str(path)]) == 0
    out = capsys.readouterr().out
    params = create_model("tiny").num_trainable_parameters()
    for expected in ("maelens (maelens checkpoint)", "architecture  tiny", f"{params:,} trainable",
                     "epoch         7", "norm_pix_loss True", "3 blocks x 4 heads x 64", "4 blocks x 4 heads x 48"):
        assert expected in out


def test_info_json_for_an_encoder_only_file_with_guessed_heads(tmp_path, capsys):
    model = create_model("tiny", embed_dim=192, num_heads=3)
    encoder = {k: v for k, v in model.state_dict().items() if not k.startswith(("decoder", "mask_token"))}
    torch.save({"model": encoder}, tmp_path / "enc.pth")
    assert main(["info", "--ckpt", str(tmp_path / "enc.pth"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "encoder-only" and info["architecture"] == "custom"
    assert info["has_decoder"] is False and info["epoch"] is None and info["decoder_parameters"] == 0
    assert info["trainable_parameters"] == info["encoder_parameters"] == sum(
        v.numel() for k, v in encoder.items() if k != "pos_embed")
    assert info["config"]["num_heads"] == 3 and any("guessed 3" in n for n in info["notes"])

    assert main(["info", "--ckpt", str(tmp_path / "enc.pth"), "--json", "--num-heads", "4"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["num_heads"] == 4


def test_info_errors_are_one_line_with_exit_status_2(tmp_path, capsys):
    assert main(["info", "--ckpt", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("maelens info: error:") and "does not exist" in err and err.count("\n") == 1

    torch.save({"model": {}, "args": Evil(tmp_path / "ran")}, tmp_path / "evil.pth")
    assert main(["info", "--ckpt", str(tmp_path / "evil.pth")]) == 2
    err = capsys.readouterr().err
    assert "refused for safety" in err and err.count("\n") == 1 and not (tmp_path / "ran").exists()


def test_info_runs_as_a_console_command(tmp_path):
    path = save_checkpoint(tmp_path / "tiny.pt", create_model("tiny"), epoch=2)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, "-m", "maelens", "info", "--ckpt", str(path), "--json"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert (info["format"], info["architecture"], info["epoch"]) == ("maelens", "tiny", 2)
