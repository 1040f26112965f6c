"""benchmarks/gpu_check.py in its CPU smoke mode (issue 23): every stage runs, the JSON and the split weights
are written, the weights load back and are analysed; and the generated images are what they claim."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import gpu_check  # noqa: E402


def test_generated_images_are_seeded_balanced_pixels():
    a, labels = gpu_check.generated_images(8, 16, seed=3)
    b, _ = gpu_check.generated_images(8, 16, seed=3)
    assert a.dtype == np.uint8 and a.shape == (8, 16, 16, 3) and np.array_equal(a, b)
    assert np.bincount(labels).tolist() == [2, 2, 2, 2]
    assert a.std() > 20  # shapes over gradients, not a flat image


@pytest.mark.slow
def test_cpu_smoke_runs_every_stage_and_its_weights_are_analysed(tmp_path):
    assert gpu_check.main(["--device", "cpu", "--smoke", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "gpu_check.json").read_text())
    assert {results[s]["status"] for s in ("tests", "throughput", "analysis_speed", "pretrain")} == {"ok"}
    assert results["tests"]["result"]["counts"].get("failed", 0) == 0
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) <= 8 and all((tmp_path / f).stat().st_size <= 16 << 20 for f in files)
    assert "weights.json" in files and "weights.part0.pt" in files
    assert gpu_check.main(["--analyse", str(tmp_path), "--smoke"]) == 0
    analysis = json.loads((tmp_path / "analysis.json").read_text())
    assert analysis["preset"] == "ipol64" and np.isfinite(analysis["reconstruction_loss"])
    assert {r["method"] for r in analysis["evaluation"]} == {"knn", "pca-knn"}
