"""The reconstruction figure: perfect predictions give back the image in every target space, the
panels paste the right patches, the per-image loss matches the model's loss, the file is written."""

import pytest
import torch

from maelens import create_model
from maelens.analysis.reconstruction import predictions_to_rgb, reconstruct, to_rgb
from maelens.models.losses import normalize_patches, rgb_to_ycbcr
from maelens.plots.reconstruction import reconstruction_figure, save_reconstruction


def images(n=3, size=32, seed=0):
    """Model inputs whose RGB values stay inside [0, 1] (so clamping never hides an error)."""
    g = torch.Generator().manual_seed(seed)
    rgb = torch.rand(n, 3, size, size, generator=g) * 0.8 + 0.1
    mean = torch.tensor((0.485, 0.456, 0.406))[:, None, None]
    std = torch.tensor((0.229, 0.224, 0.225))[:, None, None]
    return (rgb - mean) / std, rgb


def test_to_rgb_inverts_the_normalisation():
    model = create_model("tiny")
    x, rgb = images()
    assert torch.allclose(to_rgb(model, x), rgb, atol=1e-6)


def test_perfect_pixel_prediction_gives_back_the_image():
    model = create_model("tiny")
    x, rgb = images()
    assert torch.allclose(predictions_to_rgb(model, x, model.patchify(x)), rgb, atol=1e-6)


def test_norm_pix_prediction_is_unnormalised_with_the_target_patch_statistics():
    # MAE's demo: pred * sqrt(var + eps) + mean of the true patch; a perfect norm-pix output returns the image
    model = create_model("tiny", norm_pix_loss=True)
    x, rgb = images()
    pred = normalize_patches(model.patchify(x))
    assert torch.allclose(predictions_to_rgb(model, x, pred), rgb, atol=1e-5)


def test_ycbcr_prediction_goes_back_to_rgb():
    model = create_model("tiny", loss_target="ycbcr")
    x, rgb = images()
    pred = model.patchify(rgb_to_ycbcr(rgb))
    assert torch.allclose(predictions_to_rgb(model, x, pred), rgb, atol=1e-5)


@pytest.mark.parametrize("masking", ["grid", "random"])
def test_panels_paste_visible_patches_and_fill_removed_ones(masking):
    model = create_model("tiny")
    x, rgb = images(4)
    rec = reconstruct(model, x, mask_ratio=0.75, masking=masking, generator=torch.Generator().manual_seed(1))
    p = model.config.patch_size
    removed = model.unpatchify(rec.mask.unsqueeze(-1).expand(-1, -1, p * p * 3)).bool()
    assert rec.mask.sum(1).tolist() == [48.0] * 4  # 75% of the 8 x 8 grid
    assert torch.allclose(rec.original, rgb, atol=1e-6)
    assert torch.equal(rec.pasted[~removed], rec.original[~removed])
    assert torch.equal(rec.pasted[removed], rec.reconstruction[removed])
    assert torch.all(rec.masked[removed] == 0.5)
    assert torch.equal(rec.masked[~removed], rec.original[~removed])
    assert rec.reconstruction.min() >= 0 and rec.reconstruction.max() <= 1


def test_per_image_loss_averages_to_the_models_loss_and_fixed_noise_is_honoured():
    model = create_model("tiny", loss_target="ycbcr")
    x, _ = images(3)
    noise = torch.rand(3, 64, generator=torch.Generator().manual_seed(2))
    rec = reconstruct(model, x, mask_ratio=0.75, noise=noise)
    loss, _, mask = model(x, 0.75, noise)
    assert torch.equal(rec.mask, mask)
    # equal numbers of removed patches per image: the batch loss is the mean of the per-image losses
    assert rec.loss.mean().item() == pytest.approx(loss.item(), rel=1e-5)


def test_reconstruct_keeps_the_models_mode():
    model = create_model("tiny").train()
    reconstruct(model, images(2)[0], masking="grid")
    assert model.training


def test_figure_has_four_columns_per_image_and_is_saved(tmp_path):
    model = create_model("tiny", norm_pix_loss=True)
    x, _ = images(2)
    rec = reconstruct(model, x, masking="grid")
    fig = reconstruction_figure(rec, title="t")
    assert len(fig.axes) == 8
    assert [a.get_title() for a in fig.axes[:4]] == ["original", "masked (75%)", "reconstruction",
                                                     "reconstruction + visible"]
    out = save_reconstruction(model, x, tmp_path / "sub" / "fig.png", masking="grid")
    assert (tmp_path / "sub" / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.loss.shape == (2,)
