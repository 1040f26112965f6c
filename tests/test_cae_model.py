"""The Context Autoencoder (maelens.models.cae) and its HOG target: shapes, stop-gradient, what the regressor
sees, the Fig. 4 path, the loss falling on the bundled images, HOG against scikit-image."""

import numpy as np
import pytest
import torch

from maelens.errors import ConfigError, MaelensError
from maelens.models import create_model
from maelens.models.cae import ContextAutoencoder, create_cae
from maelens.models.cae_config import CAE_PRESETS, CAEConfig, get_cae_config
from maelens.models.hog import hog_histograms, hog_targets


def images(n=4, seed=0):
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def encoder_parameters(model):
    return [p for m in (model.patch_embed, model.blocks, model.norm) for p in m.parameters()] + [model.cls_token]


@pytest.mark.parametrize("target,dim", [("pixel", 48), ("hog", 27)])
def test_shapes(target, dim):
    model = create_cae("cae-tiny", target=target)
    out = model.step(images(), generator=torch.Generator().manual_seed(0))
    # 50% of the 64 patches masked, block-wise
    assert out.mask.shape == (4, 64) and torch.all(out.mask.sum(1) == 32)
    assert out.ids_masked.shape == (4, 32)
    assert torch.all(out.mask.gather(1, out.ids_masked) == 1)
    assert out.pred.shape == (4, 32, dim)
    assert out.latent_pred.shape == out.latent_target.shape == (4, 32, 64)
    loss, full, mask = model(images(), generator=torch.Generator().manual_seed(0))
    assert full.shape == (4, 64, dim) and torch.all(full[mask == 0] == 0)
    assert torch.isclose(loss, out.reconstruction + 2.0 * out.alignment)
    assert model.reconstruct_all(images()).shape == (4, 64, dim)


def test_encoder_is_the_mae_encoder_of_the_same_preset():
    cae, mae = create_cae("cae-ipol64"), create_model("ipol64", decoder_depth=0)
    assert cae.parameter_counts()["encoder"] == mae.num_trainable_parameters() == 6_990_240
    # the counts README.md quotes
    assert cae.parameter_counts() == {"encoder": 6_990_240, "regressor": 2_781_840, "decoder": 2_824_032,
                                      "total": 12_596_112} and create_model("ipol64").num_trainable_parameters() == 8_915_872
    assert create_cae("cae-tiny").parameter_counts()["total"] == 375_984
    assert create_model("tiny").num_trainable_parameters() == 185_200
    mae_keys = set(mae.state_dict())
    assert mae_keys <= set(cae.state_dict())
    # the same weights give the same encoder output through MAE's encode and the CAE's encode_patches
    cae.load_state_dict(mae.state_dict(), strict=False)
    x = torch.randn(2, 3, 64, 64)
    ids = torch.arange(64).expand(2, -1)
    assert torch.allclose(mae.encode(x, 0.0).tokens, cae.encode_patches(x, ids), atol=1e-5)


def test_alignment_target_is_stop_gradient():
    model = create_cae("cae-tiny")
    out = model.step(images(), generator=torch.Generator().manual_seed(1))
    assert out.latent_target.grad_fn is None and not out.latent_target.requires_grad
    # the alignment loss against a free prediction: no gradient reaches the encoder through the target
    free = out.latent_pred.detach().clone().requires_grad_(True)
    grads = torch.autograd.grad(((free - out.latent_target) ** 2).mean(), encoder_parameters(model) + [free],
                                allow_unused=True)
    assert all(g is None for g in grads[:-1]) and grads[-1] is not None
    # while through the prediction it does (the encoder feeds the regressor)
    grads = torch.autograd.grad(out.alignment, encoder_parameters(model), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_regressor_never_sees_masked_pixels():
    model = create_cae("cae-tiny").eval()
    x = images(2)
    noise, keep = model.masking_noise(2, 0.5, "block", torch.Generator().manual_seed(3), "cpu")
    ids, ids_masked = model.split(2, 0.5, "block", None, torch.device("cpu"), noise)
    visible = ids.mask.reshape(2, 8, 8).repeat_interleave(4, 1).repeat_interleave(4, 2) == 0
    perturbed = torch.where(visible[:, None], x, x + 5 * torch.randn_like(x))
    a, b = model.step(x, noise=noise), model.step(perturbed, noise=noise)
    assert torch.equal(a.latent_pred, b.latent_pred) and torch.equal(a.pred, b.pred)
    # the alignment target does see them (it is the encoder on the masked patches)
    assert not torch.allclose(a.latent_target, b.latent_target)
    # and a visible pixel changes the prediction
    nudged = x.clone()
    nudged[visible[:, None].expand_as(x)] += 1.0
    assert not torch.allclose(model.step(nudged, noise=noise).latent_pred, a.latent_pred)


def test_fig4_path_feeds_every_patch_to_the_decoder_without_the_regressor():
    model = create_cae("cae-tiny").eval()
    x = images(2)
    expected = model.decode(model.encode(x, 0.0).patch_tokens, torch.arange(64).expand(2, -1))
    assert torch.allclose(model.reconstruct_all(x), expected, atol=1e-5)
    # the regressor takes no part: changing it changes nothing
    before = model.reconstruct_all(x)
    with torch.no_grad():
        model.mask_query.add_(1.0)
        for p in model.regressor_blocks.parameters():
            p.add_(0.1)
    assert torch.equal(model.reconstruct_all(x), before)
    error = model.reconstruction_error(x)
    assert error.shape == (2,) and torch.allclose(error, ((before - model.targets(x)) ** 2).mean(dim=(1, 2)))


def test_loss_falls_on_the_bundled_images():
    from maelens.data import load_dataset

    data = load_dataset("bundled", image_size=32, limit=16)
    x = torch.stack([data[i][0] for i in range(len(data))])
    torch.manual_seed(0)
    model = create_cae("cae-tiny")
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(40):
        loss = model(x, generator=gen)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])


def test_config_refusals_and_presets():
    assert set(CAE_PRESETS) == {"cae-tiny", "cae-ipol64"}
    c = get_cae_config("cae-tiny")
    assert (c.regressor_depth, c.cae_decoder_depth, c.alignment_weight, c.decoder_depth) == (4, 4, 2.0, 0)
    assert CAEConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError, match="DALL-E tokenizer .* not available offline"):
        get_cae_config("cae-tiny", target="dalle")
    with pytest.raises(ConfigError, match="d-VAE"):
        get_cae_config("cae-tiny", target="dvae")
    with pytest.raises(ConfigError, match="target must be one of pixel, hog"):
        get_cae_config("cae-tiny", target="tokens")
    with pytest.raises(ConfigError, match="hog_cell"):
        get_cae_config("cae-tiny", target="hog", hog_cell=3)
    with pytest.raises(MaelensError, match="is a CAE"):
        ContextAutoencoder(c).require_decoder("x.pt", "decoder attention metrics")


# ---- HOG ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell,bins", [(4, 9), (8, 6)])
def test_hog_cells_match_scikit_image(cell, bins):
    from skimage.feature import hog

    rng = np.random.default_rng(cell)
    img = rng.random((32, 32))
    # scikit-image normalises every block; with 1x1 blocks and L1 that is each cell's histogram / its sum
    ref = hog(img, orientations=bins, pixels_per_cell=(cell, cell), cells_per_block=(1, 1), block_norm="L1",
              feature_vector=False)[:, :, 0, 0, :]
    mine = hog_histograms(torch.from_numpy(img)[None, None], cell, bins)[0, 0].numpy()
    assert mine.shape == ref.shape == (32 // cell, 32 // cell, bins)
    np.testing.assert_allclose(mine / (mine.sum(-1, keepdims=True) + 1e-5), ref, atol=1e-6)


def test_hog_by_hand():
    # a horizontal ramp: g_col = 2 inside, g_row = 0, so every interior pixel votes 2 into bin 0 (0 degrees)
    ramp = torch.arange(8.0).expand(8, 8)[None, None]
    hist = hog_histograms(ramp, 8, 9)[0, 0, 0, 0]
    # 8 rows x 6 interior columns with magnitude 2, the two border columns 0; mean over 64 pixels
    assert torch.allclose(hist, torch.tensor([2 * 48 / 64] + [0.0] * 8))
    # a vertical ramp votes into the 90-degree bin (index 4 of 9 bins of 20 degrees)
    assert hog_histograms(ramp.transpose(2, 3), 8, 9)[0, 0, 0, 0].argmax() == 4


def test_hog_targets_are_per_patch_per_channel_unit_vectors_and_invariant_to_normalisation():
    x = torch.rand(2, 3, 32, 32)
    t = hog_targets(x, patch_size=8, cell=4, bins=9)
    assert t.shape == (2, 16, 3 * 4 * 9)
    norms = t.reshape(2, 16, 3, 36).norm(dim=-1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-4)
    mean, std = torch.tensor([0.4, 0.5, 0.6])[:, None, None], torch.tensor([0.2, 0.3, 0.25])[:, None, None]
    assert torch.allclose(hog_targets((x - mean) / std, 8, 4, 9), t, atol=1e-4)
    # patch k of the targets is the HOG of patch k of MAE's patchify order (row-major)
    # (patch row 1, column 2 = cells rows 2-3, columns 4-5), values ordered (channel, cell row, cell column, bin)
    ref = hog_histograms(x, 4, 9)[:, :, 2:4, 4:6].reshape(2, 3, 36)
    ref = ref / ref.norm(dim=-1, keepdim=True)
    assert torch.allclose(t[:, 1 * 4 + 2].reshape(2, 3, 36), ref, atol=1e-4)
