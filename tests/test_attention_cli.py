"""``maelens attention-stats`` and ``maelens influence-map`` on a tiny checkpoint."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from maelens.checkpoint import save_checkpoint
from maelens.cli import main
from maelens.models import create_model


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("attn_cli")
    torch.manual_seed(0)
    ckpt = save_checkpoint(root / "tiny.pt", create_model("tiny"))
    enc_only = save_checkpoint(root / "encoder.pt", create_model("tiny", decoder_depth=0))
    rng = np.random.default_rng(0)
    data = root / "images.npz"
    np.savez(data, images=rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8))
    png = root / "photo.png"
    from PIL import Image

    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(png)
    return {"ckpt": str(ckpt), "enc": str(enc_only), "data": str(data), "png": str(png)}


def test_attention_stats_writes_csv_json_and_figures(files, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["attention-stats", "--ckpt", files["ckpt"], "--data", files["data"], "--split", "all",
                 "--mask", "grid", "--batch-size", "4", "--num-maps", "2", "--encoder", "--out", str(out),
                 "--json", "--quiet"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["checkpoint"] == files["ckpt"] and doc["mask"] == "grid" and doc["num_images"] == 10
    assert [row["layer"] for row in doc["layers"]] == [0, 1, 2, 3]
    assert len(doc["encoder_layers"]) == 3
    assert 0 <= doc["layers"][0]["soft_consistency"] <= 1
    assert set(doc["positional_bias"]) >= {"null", "images", "layers"}
    assert json.loads((out / "attention_stats.json").read_text()) == doc
    frame = pd.read_csv(out / "attention_stats.csv")
    assert list(frame["part"]) == ["decoder"] * 4 + ["encoder"] * 3
    assert {"consistency_low", "consistency_high", "locality", "black_fraction", "entropy"} <= set(frame.columns)
    assert len(pd.read_csv(out / "attention_heads.csv")) == 4 * 4 + 3 * 4
    for name in ("layer_curves.png", "positional_bias.png", "head_metrics.png", "influence_map_000.png",
                 "influence_map_001.png", "attention_stats.txt"):
        assert (out / name).stat().st_size > 0


def test_random_masking_seed_is_reproducible(files, tmp_path, capsys):
    docs = []
    for seed, name in ((3, "a"), (3, "b"), (4, "c")):
        assert main(["attention-stats", "--ckpt", files["ckpt"], "--data", files["data"], "--split", "all",
                     "--mask", "random", "--seed", str(seed), "--num-maps", "0", "--out", str(tmp_path / name),
                     "--json", "--quiet"]) == 0
        docs.append(json.loads(capsys.readouterr().out))
    strip = [{k: v for k, v in d.items() if k not in ("seed",)} for d in docs]
    assert strip[0] == strip[1] and strip[0]["positional_bias"] != strip[2]["positional_bias"]


@pytest.mark.parametrize("flag", ["--include-self", "--no-include-self"])
def test_include_self_reaches_the_analysis(files, tmp_path, capsys, flag):
    """--[no-]include-self is the library's include_self: the CLI's layers equal a direct call's."""
    from maelens.analysis.attention_dataset import attention_stats
    from maelens.checkpoint import load_checkpoint
    from maelens.data import load_dataset

    assert main(["attention-stats", "--ckpt", files["ckpt"], "--data", files["data"], "--split", "all",
                 "--num-images", "4", "--num-maps", "0", "--all-images", flag, "--out", str(tmp_path / "run"),
                 "--json", "--quiet"]) == 0
    doc = json.loads(capsys.readouterr().out)
    include = flag == "--include-self"
    assert doc["include_self"] is include
    model = load_checkpoint(files["ckpt"]).model
    data = load_dataset(files["data"], image_size=32, split="all", limit=4)
    direct = attention_stats(model, data, include_self=include, all_images=True, num_examples=0)
    other = attention_stats(model, data, include_self=not include, all_images=True, num_examples=0)
    assert [row["black_fraction"] for row in direct.layers] != [row["black_fraction"] for row in other.layers]
    for ours, theirs in zip(doc["layers"], direct.layers):  # JSON writes NaN as null
        for key in ("consistency", "black_fraction", "locality"):
            assert np.float64(ours[key] if ours[key] is not None else np.nan) == pytest.approx(theirs[key],
                                                                                                nan_ok=True)
    assert main(["influence-map", "--ckpt", files["ckpt"], "--image", files["png"], flag, "--out",
                 str(tmp_path / "map.png")]) == 0


def test_influence_map_from_file_and_index(files, tmp_path):
    assert main(["influence-map", "--ckpt", files["ckpt"], "--image", files["png"], "--out",
                 str(tmp_path / "a.png")]) == 0
    assert main(["influence-map", "--ckpt", files["ckpt"], "--data", files["data"], "--split", "all",
                 "--index", "3", "--mask", "random", "--no-overlay", "--out", str(tmp_path / "b.png")]) == 0
    assert (tmp_path / "a.png").stat().st_size > 0 and (tmp_path / "b.png").stat().st_size > 0


def test_errors_are_one_line_exit_2(files, tmp_path, capsys):
    assert main(["attention-stats", "--ckpt", files["enc"], "--data", files["data"], "--split", "all",
                 "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "encoder.pt has no decoder" in err
    assert main(["influence-map", "--ckpt", files["ckpt"], "--data", files["data"], "--split", "all",
                 "--index", "99", "--out", str(tmp_path / "y.png")]) == 2
    assert "--index must be in [0, 9]" in capsys.readouterr().err
    assert main(["attention-stats", "--ckpt", files["ckpt"], "--data", files["data"], "--split", "all",
                 "--top-n", "0", "--out", str(tmp_path / "z")]) == 2
    assert "--top-n must be at least 1" in capsys.readouterr().err


def test_subprocess_entry_point(files, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "maelens", "attention-stats", "--ckpt", files["ckpt"],
                           "--data", files["data"], "--split", "all", "--num-images", "4", "--num-maps", "1",
                           "--out", str(tmp_path / "sp")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "consistency" in proc.stdout and (tmp_path / "sp" / "attention_stats.csv").is_file()
