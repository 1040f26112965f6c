"""Token-norm statistics (issue 14): the robust outlier threshold by hand, and per-layer summaries."""

import numpy as np
import pytest
import torch

from maelens.analysis.layer_outputs import run_layers
from maelens.analysis.token_stats import MAD_SCALE, outlier_threshold, summarise_norms, token_stats
from maelens.errors import ConfigError
from maelens.models import create_model


def test_threshold_by_hand():
    # median 3, |x - 3| = 2, 1, 0, 1, 97 -> MAD 1; threshold 3 + 3 * 1.4826
    median, mad, threshold = outlier_threshold(np.array([1.0, 2.0, 3.0, 4.0, 100.0]), k=3)
    assert (median, mad) == (3.0, 1.0)
    assert threshold == pytest.approx(3 + 3 * 1.4826, abs=1e-4)
    assert MAD_SCALE == pytest.approx(1 / 0.6744897501960817)  # 1 / Φ⁻¹(3/4)
    with pytest.raises(ConfigError, match="k >= 0"):
        outlier_threshold(np.ones(3), k=-1)


def test_summary_of_planted_outliers():
    rng = np.random.default_rng(0)
    norms = 10 + rng.normal(size=(2, 50, 1 + 16))
    norms[1, :, 1 + 5] = 80.0  # layer 1: patch 5 (row 1, col 1) is an outlier in every image
    norms[:, :, 0] = 40.0
    report = summarise_norms(["encoder.0", "encoder.1"], norms, (4, 4), k=5)
    clean, planted = report.layers
    assert planted["outliers"] == 50 and planted["outlier_share"] == pytest.approx(1 / 16)
    assert report.position_share[1, 1, 1] == 1.0 and report.position_share[1].sum() == 1.0
    assert planted["position_uniform_p"] < 1e-10 and planted["images_with_outlier"] == 1.0
    assert planted["interior_share"] == pytest.approx(1 / 4) and planted["border_share"] == 0.0
    assert clean["outlier_share"] < 0.01 and clean["cls_above_threshold"] == 1.0
    assert report.hist_counts.shape == (2, 50) and report.hist_counts[1].sum() == 50 * 16


def test_token_stats_of_a_model_count_what_the_layers_hold():
    torch.manual_seed(0)
    model = create_model("tiny").eval()
    data = [(torch.randn(3, 32, 32), 0) for _ in range(6)]
    report = token_stats(model, data, parts=("encoder", "decoder"), k=2.0, batch_size=4, quiet=True)
    assert [r["layer"] for r in report.layers][-1] == "decoder.3" and len(report.layers) == 7
    tokens = run_layers(model, torch.stack([x for x, _ in data]), ("encoder", "decoder"))
    norms = tokens[1][:, 1:].norm(dim=-1).numpy()
    _, _, threshold = outlier_threshold(norms, 2.0)
    assert report.layers[1]["threshold"] == pytest.approx(threshold, rel=1e-5)
    assert report.layers[1]["outliers"] == int((norms > threshold).sum())
    assert report.position_norm.shape == (7, 8, 8)
