"""``maelens segment`` in-process: a run from an MAE checkpoint on the offline set, and bad input."""

import json

import numpy as np
import pytest
from PIL import Image

from maelens import create_model
from maelens.checkpoint import save_checkpoint
from maelens.cli import main


def segment(out, *extra):
    return main(["segment", "--epochs", "1", "--num-images", "32", "--eval-images", "16", "--batch-size", "16",
                 "--figure-images", "2", "--device", "cpu", "--out", str(out), *extra])


def test_segment_from_a_checkpoint_and_resume(tmp_path, capsys):
    save_checkpoint(tmp_path / "mae.pt", create_model("tiny"))
    out = tmp_path / "run"
    assert segment(out, "--ckpt", str(tmp_path / "mae.pt"), "--decoder", "mask", "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "completed" and summary["segmenter"]["decoder"] == "mask"
    assert summary["train_images"] == 32 and summary["eval_images"] == 16
    for name in ("checkpoint.pt", "log.csv", "metrics.json", "predictions.png", "curves.png"):
        assert (out / name).is_file(), name
    # the same folder again needs --resume; with it and more epochs, the run continues
    assert segment(out, "--ckpt", str(tmp_path / "mae.pt"), "--decoder", "mask") == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["segment", "--ckpt", str(tmp_path / "mae.pt"), "--decoder", "mask", "--epochs", "2",
                 "--num-images", "32", "--eval-images", "16", "--batch-size", "16", "--device", "cpu",
                 "--resume", "auto", "--quiet", "--out", str(out)]) == 0
    assert [r["epoch"] for r in json.loads((out / "summary.json").read_text())["history"]] == [0, 1]


@pytest.mark.parametrize("args, message", [
    (["--from-scratch", "--ckpt", "x.pt"], "not allowed with argument"),
    ([], "one of the arguments --ckpt --from-scratch is required"),
    (["--from-scratch", "--decoder", "conv"], "invalid choice"),
    (["--from-scratch", "--num-classes", "1"], "at least 2 classes"),
    (["--ckpt", "missing.pt"], "does not exist"),
    (["--from-scratch", "--data", "nowhere"], "no such file or directory"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert segment(out, *args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_bad_mask_folder_is_one_line(tmp_path, capsys):
    for kind in ("images", "masks"):
        (tmp_path / "data" / kind).mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "data" / "images" / "a.png")
    Image.fromarray(np.zeros((4, 8), np.uint8)).save(tmp_path / "data" / "masks" / "a.png")
    assert segment(tmp_path / "out", "--from-scratch", "--data", str(tmp_path / "data")) == 2
    err = capsys.readouterr().err
    assert "mask is 8x4 but its image a.png is 8x8" in err and len(err.strip().splitlines()) == 1


def test_labels_out_of_range_fail_before_any_work(tmp_path, capsys):
    for kind in ("images", "masks"):
        (tmp_path / "data" / kind).mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "data" / "images" / "a.png")
    Image.fromarray(np.full((8, 8), 9, np.uint8)).save(tmp_path / "data" / "masks" / "a.png")
    out = tmp_path / "out"
    assert segment(out, "--from-scratch", "--data", str(tmp_path / "data"), "--num-classes", "4") == 2
    err = capsys.readouterr().err
    assert "labels [9] are out of range for 4 classes" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
