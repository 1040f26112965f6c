"""Reconstruction error and its mean-colour baseline, on inputs worked out by hand."""

import pytest
import torch

from maelens import create_model
from maelens.analysis.reconstruction import mean_colour_fill_error, reconstruction_error


def test_mean_colour_fill_error_by_hand():
    # 1 image, 3 patches of 1 pixel: colours (0,0,0), (1,1,1) visible -> mean 0.5 grey;
    # the removed patch (1, 0, 0) differs from grey by (0.5, 0.5, 0.5): error 0.25.
    patches = torch.tensor([[[0.0, 0, 0], [1.0, 1, 1], [1.0, 0, 0]]])
    removed = torch.tensor([[0.0, 0.0, 1.0]])
    err = mean_colour_fill_error(patches, removed)
    assert err[0, 2].item() == pytest.approx(0.25)
    assert err[0, 0].item() == pytest.approx(0.25)


def test_flat_images_are_free_for_the_baseline():
    model = create_model("tiny")
    grey = torch.full((4, 3, 32, 32), 0.3)
    data = torch.utils.data.TensorDataset(grey, torch.zeros(4))
    result = reconstruction_error(model, data, seed=1)
    assert result.baseline_mse == pytest.approx(0.0, abs=1e-10)
    assert result.patches == 4 * 48 and result.model_mse >= 0
    assert reconstruction_error(model, data, seed=1) == result


def test_per_image_errors_average_to_the_totals():
    """Every image has the same number of removed patches, so the mean of the per-image errors is the
    overall mean; the per-image arrays are what the interval over images (experiments) resamples."""
    model = create_model("tiny")
    imgs = torch.rand(5, 3, 32, 32)
    result = reconstruction_error(model, torch.utils.data.TensorDataset(imgs, torch.zeros(5)), seed=2, batch_size=2)
    assert result.model_per_image.shape == result.baseline_per_image.shape == (5,)
    assert result.model_per_image.mean() == pytest.approx(result.model_mse, rel=1e-5)
    assert result.baseline_per_image.mean() == pytest.approx(result.baseline_mse, rel=1e-5)
