"""``maelens info``: table and JSON summaries, one-line errors with exit status 2."""

import json
import os
import subprocess
import sys

import numpy as np
import torch
from test_checkpoint import Evil

from maelens import create_model
from maelens.checkpoint import save_checkpoint
from maelens.cli import main


def test_info_prints_format_architecture_parameters_and_epoch(tmp_path, capsys):
    path = save_checkpoint(tmp_path / "tiny.pt", create_model("tiny", norm_pix_loss=True), epoch=7)
    assert main(["info", "--ckpt", str(path)]) == 0
    out = capsys.readouterr().out
    params = create_model("tiny").num_trainable_parameters()
    for expected in ("maelens (maelens checkpoint)", "architecture  tiny", f"{params:,} trainable",
                     "epoch         7", "norm_pix_loss True", "3 blocks x 4 heads x 64", "4 blocks x 4 heads x 48"):
        assert expected in out


def test_info_json_for_an_encoder_only_file_without_head_counts(tmp_path, capsys):
    model = create_model("tiny", embed_dim=192, num_heads=3)
    encoder = {k: v for k, v in model.state_dict().items() if not k.startswith(("decoder", "mask_token"))}
    torch.save({"model": encoder}, tmp_path / "enc.pth")
    assert main(["info", "--ckpt", str(tmp_path / "enc.pth"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "encoder-only" and info["architecture"] == "custom"
    assert info["has_decoder"] is False and info["epoch"] is None and info["decoder_parameters"] == 0
    assert info["trainable_parameters"] == info["encoder_parameters"] == sum(
        v.numel() for k, v in encoder.items() if k != "pos_embed")
    assert info["config"]["num_heads"] is None and info["heads_known"] is False  # "not stored", never a guess
    assert info["provenance"]["num_heads"] == "not stored" and info["release"] == "encoder-only"
    assert main(["info", "--ckpt", str(tmp_path / "enc.pth")]) == 0
    text = capsys.readouterr().out
    assert "3 blocks x heads not stored x 192" in text and "--num-heads H" in text

    assert main(["info", "--ckpt", str(tmp_path / "enc.pth"), "--json", "--num-heads", "3"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["config"]["num_heads"] == 3 and info["provenance"]["num_heads"] == "given (--num-heads)"


def test_analyses_refuse_unknown_head_counts_and_run_exactly_with_them(tmp_path, capsys):
    from maelens.analysis.features import FeatureSet, extract_features
    from maelens.data import load_dataset

    model = create_model("tiny", embed_dim=96, num_heads=3, decoder_embed_dim=32, decoder_num_heads=2)
    torch.save(model.state_dict(), tmp_path / "custom.pth")
    commands = {
        "attention-stats": ["attention-stats", "--ckpt", str(tmp_path / "custom.pth"), "--num-images", "8",
                            "--out", str(tmp_path / "attn"), "--quiet"],
        "features": ["features", "--ckpt", str(tmp_path / "custom.pth"), "--num-images", "8",
                     "--out", str(tmp_path / "f.npz"), "--quiet"],
    }
    for argv in commands.values():
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--num-heads H and --decoder-num-heads H" in err
    assert not (tmp_path / "attn").exists() and not (tmp_path / "f.npz").exists()
    heads = ["--num-heads", "3", "--decoder-num-heads", "2"]
    assert main(commands["features"] + heads) == 0
    got = FeatureSet.load(tmp_path / "f.npz")
    data = load_dataset("bundled", image_size=32, split="test", limit=8)
    want = extract_features(model.eval(), data, mask_ratio=0.0)
    assert np.array_equal(got.features, want.features)
    assert got.settings["num_heads"] == 3 and got.settings["provenance"]["num_heads"] == "given (--num-heads)"
    assert main(commands["attention-stats"] + heads) == 0
    doc = json.loads((tmp_path / "attn" / "attention_stats.json").read_text())
    assert doc["decoder_num_heads"] == 2 and doc["checkpoint_format"] == "official"
    assert main(commands["features"] + ["--num-heads", "0"]) == 2  # argparse refuses it
    assert "positive integer" in capsys.readouterr().err


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
