"""``maelens data info|prepare|sources`` run in-process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from maelens.cli import main


@pytest.fixture()
def npz(tmp_path: Path) -> Path:
    path = tmp_path / "set.npz"
    images = np.random.default_rng(0).integers(0, 256, (10, 20, 20, 3), dtype=np.uint8)
    np.savez(path, images=images, labels=np.arange(10) % 2, classes=np.array(["left", "right"]),
             split=np.array(["train"] * 7 + ["test"] * 3))
    return path


def test_data_info_json_and_text(npz: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "info", "--data", str(npz), "--image-size", "16", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["num_images"], info["num_train"], info["num_test"]) == (10, 7, 3)
    assert info["classes"] == ["left", "right"] and info["class_counts"] == {"left": 5, "right": 5}
    assert info["licence"] == "the user's own data"
    assert main(["data", "info", "--data", str(npz)]) == 0
    text = capsys.readouterr().out
    assert "10 (7 train, 3 test)" in text and "64x64 model input" in text


def test_data_prepare_decodes_every_image(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from PIL import Image

    (tmp_path / "a").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "a" / f"{i}.png")
    assert main(["data", "prepare", "--data", str(tmp_path), "--image-size", "8", "16", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["image_size"], r["num_images"]) for r in rows] == [(8, 3), (16, 3)]
    (tmp_path / "a" / "1.png").write_bytes((tmp_path / "a" / "1.png").read_bytes()[:200])
    assert main(["data", "prepare", "--data", str(tmp_path), "--image-size", "8", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("maelens data: error: ") and "1.png" in err and "\n" not in err


def test_data_sources_lists_every_builtin(capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "sources", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert [d["spec"].split("[")[0] for d in info["datasets"]] == ["bundled", "photos", "backgrounds", "fashion-mnist",
                                                                  "canvas"]
    assert {c["name"] for c in info["collections"]} >= {"scikit-image", "mate-backgrounds", "opencv-doc"}
    assert main(["data", "sources"]) == 0
    assert "MIT" in capsys.readouterr().out


def test_data_errors_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "info", "--data", str(tmp_path / "nothing.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert "nothing.npz: no such file or directory" in err and "\n" not in err
