"""The plain (unweighted) YCbCr pretraining target beside the paper's weighted MSE_w (issue 10: the paper's
three targets RGB, YCbCr and weighted YCbCr), and that checkpoints written before it still load."""

import pytest
import torch

from maelens import create_model, load_checkpoint
from maelens.analysis.reconstruction import predictions_to_rgb
from maelens.checkpoint import save_checkpoint
from maelens.models.losses import YCBCR_WEIGHTS, masked_mean, patch_errors, rgb_to_ycbcr
from maelens.models.presets import ModelConfig, get_config


def test_plain_and_weighted_ycbcr_losses():
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)).clamp(-2, 2)
    noise = torch.rand(4, 64, generator=torch.Generator().manual_seed(1))
    losses = {}
    for target in ("ycbcr", "ycbcr-plain"):
        torch.manual_seed(0)
        model = create_model("tiny", loss_target=target)
        loss, pred, mask = model(x, 0.75, noise)
        mean = torch.tensor(model.config.norm_mean)[:, None, None]
        std = torch.tensor(model.config.norm_std)[:, None, None]
        ycc = model.patchify(rgb_to_ycbcr(x * std + mean))
        weights = YCBCR_WEIGHTS if target == "ycbcr" else None
        torch.testing.assert_close(loss, masked_mean(patch_errors(pred, ycc, weights), mask))
        losses[target] = loss
        # predictions are YCbCr, so figures convert them back to RGB
        rgb = predictions_to_rgb(model, x, model.patchify(rgb_to_ycbcr(x * std + mean)))
        torch.testing.assert_close(rgb, (x * std + mean).clamp(0, 1), atol=1e-4, rtol=1e-4)
    assert losses["ycbcr"].item() != pytest.approx(losses["ycbcr-plain"].item())


def test_targets_are_stored_and_old_checkpoints_load(tmp_path):
    save_checkpoint(tmp_path / "plain.pt", create_model("tiny", loss_target="ycbcr-plain"))
    assert load_checkpoint(tmp_path / "plain.pt").config.loss_target == "ycbcr-plain"
    old = get_config("tiny").to_dict() | {"loss_target": "ycbcr"}  # what every YCbCr checkpoint so far stores
    assert ModelConfig.from_dict(old).loss_target == "ycbcr"
    with pytest.raises(Exception, match="loss_target"):
        get_config("tiny", loss_target="ycbcr-weighted-typo")
