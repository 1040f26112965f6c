"""``maelens distfit`` end to end: checkpoint, saved features and synthetic sources; errors."""

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
def tiny_ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("distfit")
    torch.manual_seed(0)
    path = save_checkpoint(root / "tiny.pt", create_model("tiny"))
    images = np.random.default_rng(0).integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    np.savez(root / "images.npz", images=images, labels=np.arange(10) % 2, split=np.array(["test"] * 10))
    return path, root / "images.npz"


def _outputs(out):
    summary = json.loads((out / "distfit.json").read_text())
    frame = pd.read_csv(out / "distfit.csv")
    return summary, frame


def test_checkpoint_source(tiny_ckpt, tmp_path, capsys):
    ckpt, data = tiny_ckpt
    out = tmp_path / "out"
    code = main(["distfit", "--ckpt", str(ckpt), "--data", str(data), "--mask-ratio", "0.75", "--rank-samples", "2",
                 "--rank-laws", "t,norm,cauchy", "--out", str(out), "--json", "--quiet"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    summary, frame = _outputs(out)
    assert printed == summary
    embed = 64  # tiny preset: 8 x 8 patches, 16 visible at 75% masking
    assert summary["num_samples"] == 10 and summary["values_per_sample"] == 16 * embed
    assert summary["pvalue_method"] == "asymptotic" and "Lilliefors" in summary["pvalue_note"]
    settings = summary["settings"]
    assert settings["source"] == "checkpoint" and settings["mask_ratio"] == 0.75 and settings["apply_norm"] is True
    for law in ("norm", "t"):
        info = summary["laws"][law]
        assert 0 <= info["fraction_not_rejected"] <= 1 and len(info["ci95"]) == 2
    assert len(frame) == 10 and frame["label"].tolist() == [0, 1] * 5
    assert frame["t_df"].between(0.1, 1000).all() and frame["norm_pvalue"].between(0, 1).all()
    ranking = pd.read_csv(out / "ranking.csv")
    assert sorted(ranking["law"]) == ["cauchy", "norm", "t"] and ranking["rank"].tolist() == [1, 2, 3]
    assert summary["ranking"]["bins"] == 100 and len(summary["ranking"]["samples"]) == 2
    for name in ("pvalues_ecdf.png", "df_hist.png", "ranking.png", "ranking_samples.csv", "distfit.txt"):
        assert (out / name).stat().st_size > 0


def test_checkpoint_single_token_without_norm(tiny_ckpt, tmp_path):
    ckpt, data = tiny_ckpt
    out = tmp_path / "out"
    assert main(["distfit", "--ckpt", str(ckpt), "--data", str(data), "--mask-ratio", "0", "--token-index", "3",
                 "--no-norm", "--rank-samples", "0", "--out", str(out), "--quiet"]) == 0
    summary, _ = _outputs(out)
    assert summary["values_per_sample"] == 64 and summary["settings"]["token_index"] == 3
    assert summary["settings"]["apply_norm"] is False and "ranking" not in summary
    assert not (out / "ranking.csv").exists()


def test_features_file_with_bootstrap(tmp_path, capsys):
    feats = np.random.default_rng(1).standard_t(3, (12, 200))
    np.save(tmp_path / "feats.npy", feats)
    out = tmp_path / "out"
    assert main(["distfit", "--features-file", str(tmp_path / "feats.npy"), "--pvalues", "parametric-bootstrap",
                 "--bootstrap", "30", "--rank-samples", "1", "--rank-laws", "t,norm", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "parametric-bootstrap" in text and "Student-t df" in text
    summary, frame = _outputs(out)
    assert summary["pvalue_method"] == "parametric-bootstrap" and summary["bootstrap_draws"] == 30
    assert summary["settings"]["source"] == "features file"
    assert (frame["t_pvalue"] >= 1 / 31).all()
    assert summary["laws"]["norm"]["fraction_not_rejected"] < 0.5


def test_synthetic_source(tmp_path):
    out = tmp_path / "out"
    assert main(["distfit", "--synthetic", "--samples", "30", "--tokens", "3", "--dim", "20", "--input", "uniform",
                 "--rank-samples", "1", "--rank-laws", "norm,t", "--out", str(out), "--quiet"]) == 0
    summary, frame = _outputs(out)
    assert summary["values_per_sample"] == 60 and len(frame) == 30
    assert summary["settings"]["source"] == "synthetic attention" and summary["settings"]["input"] == "uniform"


@pytest.mark.parametrize("argv, message", [
    (["--synthetic", "--rank-laws", "t,foo,norm"], "--rank-laws: unknown distribution name(s) 'foo'"),
    (["--synthetic", "--bootstrap", "0"], "--bootstrap must be >= 1"),
    (["--synthetic", "--alpha", "2"], "--alpha must be in (0, 1)"),
    (["--features-file", "missing.npy"], "feature file missing.npy: does not exist"),
])
def test_errors_are_one_line(tmp_path, capsys, argv, message):
    assert main(["distfit", *argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_exactly_one_source(tmp_path, capsys):
    for argv in ([], ["--synthetic", "--features-file", "x.npy"]):
        assert main(["distfit", *argv, "--out", str(tmp_path)]) == 2
    assert "--ckpt" in capsys.readouterr().err


def test_subprocess_bad_rank_laws(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "maelens", "distfit", "--synthetic", "--rank-laws", "nope",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "maelens distfit: error: --rank-laws: unknown distribution name(s) 'nope': expected scipy.stats continuous "
        "distributions such as t, cauchy, lognorm, beta, norm"]
