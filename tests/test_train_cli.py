"""``maelens train`` and ``maelens reconstruct`` in-process, on a small ``.npz`` of images."""

import json

import numpy as np
import pytest

from maelens import load_checkpoint
from maelens.cli import main


@pytest.fixture
def npz(tmp_path):
    """40 smooth colour images, 32 for training and 8 held out."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    base = np.stack([xx, yy, 1 - xx], -1)
    images = (255 * np.clip(base[None] * rng.uniform(0.3, 1.0, (40, 1, 1, 3)), 0, 1)).astype(np.uint8)
    path = tmp_path / "images.npz"
    np.savez(path, images=images, labels=np.arange(40) % 4, split=np.array(["train"] * 32 + ["test"] * 8))
    return path


def run_train(npz, out, *extra):
    return main(["train", "--preset", "tiny", "--data", str(npz), "--epochs", "1", "--batch-size", "8",
                 "--warmup-epochs", "0", "--recon-images", "4", "--out", str(out), "--device", "cpu", *extra])


def test_train_writes_checkpoint_logs_figure_and_summary(npz, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_train(npz, out, "--mask", "grid", "--loss", "norm-pix", "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "completed" and summary["images"] == 32 and summary["steps_per_epoch"] == 4
    assert summary["train_config"]["masking"] == "grid" and summary["model"]["norm_pix_loss"] is True
    for name in ("checkpoint.pt", "log.csv", "log.jsonl", "summary.json", "recon_epoch_000.png"):
        assert (out / name).is_file(), name
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt.epoch == 0 and ckpt.config.name == "tiny" and ckpt.train_config["data"] == str(npz)

    # a second run into the same folder must ask for --resume; with it, training continues
    assert run_train(npz, out) == 2
    assert "--resume auto" in capsys.readouterr().err
    assert run_train(npz, out, "--mask", "grid", "--loss", "norm-pix", "--resume", "auto", "--epochs", "2") == 0
    text = capsys.readouterr().out
    assert "resumed from" in text and "epoch" in text
    assert load_checkpoint(out / "checkpoint.pt").epoch == 1
    assert (out / "recon_epoch_001.png").is_file()


def test_nan_input_ends_with_one_line_and_exit_2(tmp_path, capsys):
    path = tmp_path / "nan.npz"
    np.savez(path, images=np.full((16, 3, 32, 32), np.nan, np.float32), split=np.array(["train"] * 16))
    assert run_train(path, tmp_path / "nan", "--quiet", "--recon-images", "0") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("maelens train: error:") and len(err.splitlines()) == 1
    assert "16 of 16 images with NaN or infinite values" in err and str(path) in err  # bad data, not the lr
    assert not (tmp_path / "nan").exists()


def test_bad_arguments_exit_2(npz, tmp_path, capsys):
    assert run_train(npz, tmp_path / "a", "--mask-ratio", "1.5") == 2
    assert "mask_ratio" in capsys.readouterr().err
    assert run_train(npz, tmp_path / "b", "--resume", str(tmp_path / "missing.pt")) == 2
    assert "missing.pt" in capsys.readouterr().err


def test_reconstruct_writes_a_png(npz, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_train(npz, out, "--quiet", "--recon-images", "0") == 0
    fig = tmp_path / "figs" / "recon.png"
    assert main(["reconstruct", "--ckpt", str(out / "checkpoint.pt"), "--data", str(npz), "--num-images", "3",
                 "--mask", "grid", "--out", str(fig), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert fig.read_bytes()[:4] == b"\x89PNG"
    assert summary["images"] == 3 and len(summary["loss_per_image"]) == 3
    assert summary["mean_loss"] == pytest.approx(np.mean(summary["loss_per_image"]))
