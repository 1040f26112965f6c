"""``maelens features``, ``maelens evaluate`` and ``maelens similarity`` end to end on a tiny model."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from maelens.analysis.features import FeatureSet
from maelens.checkpoint import save_checkpoint
from maelens.cli import main
from maelens.models import create_model


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny checkpoint and a 3-class .npz image set (40 train + 20 test images, class = colour)."""
    root = tmp_path_factory.mktemp("evaluate_cli")
    torch.manual_seed(0)
    ckpt = save_checkpoint(root / "tiny.pt", create_model("tiny"))
    rng = np.random.default_rng(0)
    labels = np.arange(60) % 3
    colours = np.array([[220, 40, 40], [40, 200, 40], [40, 40, 220]])
    images = np.clip(colours[labels][:, None, None, :] + rng.normal(0, 30, (60, 32, 32, 3)), 0, 255).astype(np.uint8)
    split = np.where(np.arange(60) < 40, "train", "test")
    data = root / "colours.npz"
    np.savez(data, images=images, labels=labels, classes=np.array(["red", "green", "blue"]), split=split)
    from PIL import Image

    Image.fromarray(images[45]).save(root / "query.png")
    return root, str(ckpt), str(data)


def test_features_then_evaluate(files, capsys):
    root, ckpt, data = files
    feats = root / "feats.npz"
    assert main(["features", "--ckpt", ckpt, "--data", data, "--split", "all", "--mask-ratio", "0",
                 "--pool", "mean", "--out", str(feats), "--quiet"]) == 0
    fs = FeatureSet.load(feats)
    assert fs.features.shape == (60, 64) and fs.settings["classes"] == ["red", "green", "blue"]
    out = root / "eval"
    code = main(["evaluate", "--features", str(feats), "--methods", "knn,pca-knn,tsne-knn,linear", "--k", "5",
                 "--epochs", "3", "--perplexity", "10", "--out", str(out), "--json", "--quiet"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    table = pd.read_csv(out / "evaluation.csv")
    assert list(table.columns[:6]) == ["method", "accuracy", "ci_low", "ci_high", "n", "protocol"]
    assert list(table["method"]) == ["knn", "pca-knn", "tsne-knn", "linear"]
    assert (table["n"] == 15).all() and table["protocol"].str.contains("holdout").all()
    assert ((table["ci_low"] <= table["accuracy"]) & (table["accuracy"] <= table["ci_high"])).all()
    assert json.loads((out / "evaluation.json").read_text())["results"] == printed["results"]
    assert (out / "map_tsne-knn.png").stat().st_size > 0
    with np.load(out / "maps.npz") as maps:
        assert maps["tsne-knn_coords"].shape == (60, 2)


def test_evaluate_from_checkpoint_uses_dataset_splits(files, capsys):
    root, ckpt, data = files
    out = root / "eval_ckpt"
    assert main(["evaluate", "--ckpt", ckpt, "--data", data, "--methods", "knn,attentive", "--k", "5",
                 "--epochs", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "attentive" in printed and "train 40 / test 20" in printed
    table = pd.read_csv(out / "evaluation.csv")
    assert (table["n"] == 20).all()
    assert table.loc[table["method"] == "knn", "accuracy"].item() > 0.9  # colours are easy


def test_mismatched_or_unlabelled_features_exit_2(files, capsys):
    root, _, _ = files
    rng = np.random.default_rng(0)
    labels = np.arange(30) % 3
    FeatureSet(rng.normal(size=(30, 8)).astype(np.float32), labels, np.arange(30).astype(str)).save(root / "a.npz")
    FeatureSet(rng.normal(size=(30, 6)).astype(np.float32), labels, np.arange(30).astype(str)).save(root / "b.npz")
    unlabelled = np.full(30, -1)
    FeatureSet(rng.normal(size=(30, 8)).astype(np.float32), unlabelled, np.arange(30).astype(str)).save(root / "u.npz")
    code = main(["evaluate", "--features", str(root / "a.npz"), "--fit-on", str(root / "b.npz"),
                 "--out", str(root / "bad"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "b.npz has 6-dimensional features but" in err and "a.npz has 8" in err
    code = main(["evaluate", "--features", str(root / "u.npz"), "--methods", "linear", "--out", str(root / "bad")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "no label" in err and len(err.splitlines()) == 1
    assert main(["evaluate", "--features", str(root / "a.npz"), "--methods", "knn,umap", "--out", str(root / "bad")]) == 2
    assert "unknown or no evaluation method(s) umap" in capsys.readouterr().err
    assert not (root / "bad").exists()


def test_similarity_writes_figure_and_csv(files, capsys):
    root, ckpt, data = files
    fig = root / "sim" / "similar.png"
    code = main(["similarity", "--ckpt", ckpt, "--data", data, "--split", "test", "--query", "0",
                 str(root / "query.png"), "--top-k", "4", "--mask-ratio", "0.25", "0", "--out", str(fig), "--quiet"])
    assert code == 0 and fig.stat().st_size > 0
    table = pd.read_csv(fig.with_suffix(".csv"))
    assert len(table) == 2 * 2 * 4  # queries x mask ratios x top-k
    assert set(table["mask_ratio"]) == {0.25, 0.0}
    first = table[(table["query"] == "0") & (table["mask_ratio"] == 0.0)]
    assert 0 not in set(first["index"]) and list(first["rank"]) == [1, 2, 3, 4]
    assert main(["similarity", "--ckpt", ckpt, "--data", data, "--query", "nothing.png", "--out", str(fig)]) == 2
    assert "neither a dataset index nor an existing image file" in capsys.readouterr().err


def test_evaluate_subprocess(files):
    root, _, _ = files
    rng = np.random.default_rng(1)
    labels = np.arange(40) % 2
    feats = rng.normal(size=(40, 5)).astype(np.float32) + 3 * labels[:, None]
    FeatureSet(feats, labels, np.arange(40).astype(str)).save(root / "sub.npz")
    run = subprocess.run([sys.executable, "-m", "maelens", "evaluate", "--features", str(root / "sub.npz"),
                          "--methods", "knn", "--k", "3", "--folds", "4", "--out", str(root / "sub")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "stratified 4-fold" in run.stdout and (root / "sub" / "evaluation.csv").is_file()
