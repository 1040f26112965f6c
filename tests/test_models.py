"""The MAE module: parameter count, official names, position tables, patch layout, masking and loss."""

import math

import pytest
import torch

from maelens import create_model
from maelens.errors import ConfigError, MaelensError
from maelens.models import get_config
from maelens.models.losses import YCBCR_WEIGHTS, masked_mean, patch_errors, rgb_to_ycbcr, ycbcr_to_rgb
from maelens.models.pos_embed import sincos_2d


def test_ipol64_has_the_papers_parameter_count():
    # IPOL sec. 4: "It has a total of 8915872 parameters" (fixed position tables excluded).
    assert create_model("ipol64").num_trainable_parameters() == 8_915_872


def test_kth_presets_follow_table_1():
    small, medium = get_config("kth-small"), get_config("kth-medium")
    assert (small.embed_dim, small.depth, small.decoder_embed_dim, small.decoder_depth) == (128, 3, 64, 1)
    assert (medium.embed_dim, medium.depth, medium.decoder_embed_dim, medium.decoder_depth) == (256, 4, 128, 2)
    assert small.mlp_ratio == medium.mlp_ratio == 2.0


def test_parameter_names_are_the_official_ones():
    model = create_model("tiny")
    keys = set(model.state_dict())
    expected_top = {"cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight",
                    "norm.bias", "decoder_embed.weight", "decoder_embed.bias", "mask_token", "decoder_pos_embed",
                    "decoder_norm.weight", "decoder_norm.bias", "decoder_pred.weight", "decoder_pred.bias"}
    block = {"norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
             "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias"}
    expected = set(expected_top)
    expected |= {f"blocks.{i}.{k}" for i in range(3) for k in block}
    expected |= {f"decoder_blocks.{i}.{k}" for i in range(4) for k in block}
    assert keys == expected
    assert not model.pos_embed.requires_grad and not model.decoder_pos_embed.requires_grad
    assert model.norm.eps == 1e-6


def test_sincos_table_by_hand():
    table = sincos_2d(8, (2, 3), cls_token=True)
    assert table.shape == (7, 8)
    assert (table[0] == 0).all()
    # patch (row 1, col 2) is index 1 + 1*3 + 2; channels: [sin(w*om), cos(w*om), sin(h*om), cos(h*om)]
    # with om = (1, 1/100) for a quarter of 2 channels (omega = 1/10000**(i/2)).
    w, h = 2.0, 1.0
    expected = [math.sin(w), math.sin(w / 100), math.cos(w), math.cos(w / 100),
                math.sin(h), math.sin(h / 100), math.cos(h), math.cos(h / 100)]
    assert table[1 + 3 + 2] == pytest.approx(expected, abs=1e-6)


def test_patchify_layout_and_round_trip():
    model = create_model("tiny")
    imgs = torch.randn(2, 3, 32, 32)
    patches = model.patchify(imgs)
    assert patches.shape == (2, 64, 48)
    # patch (row 1, col 2), pixel (p=3, q=1), channel 2 sits at index (3*4 + 1)*3 + 2.
    assert patches[1, 1 * 8 + 2, (3 * 4 + 1) * 3 + 2] == imgs[1, 2, 4 + 3, 8 + 1]
    assert torch.equal(model.unpatchify(patches), imgs)


def test_forward_with_noise_follows_the_official_shuffle():
    torch.manual_seed(0)
    model = create_model("tiny").eval()
    imgs = torch.randn(2, 3, 32, 32)
    noise = torch.rand(2, 64)
    loss, pred, mask = model(imgs, 0.75, noise)
    assert pred.shape == (2, 64, 48) and mask.shape == (2, 64)
    # the 16 smallest noise values are kept (mask 0), the rest removed (mask 1)
    kept = torch.argsort(noise, dim=1)[:, :16]
    expected = torch.ones(2, 64)
    expected.scatter_(1, kept, 0.0)
    assert torch.equal(mask, expected)
    loss2, pred2, _ = model(imgs, 0.75, noise)
    assert torch.equal(pred, pred2) and loss == loss2


def test_loss_counts_removed_patches_only():
    model = create_model("tiny")
    imgs = torch.randn(1, 3, 32, 32)
    target = model.patchify(imgs)
    mask = torch.zeros(1, 64)
    mask[0, :10] = 1
    pred = target.clone()
    pred[0, 10:] += 5.0  # errors on visible patches must not count
    assert model.forward_loss(imgs, pred, mask).item() == 0.0
    pred[0, 0] += 2.0  # one removed patch off by 2 everywhere: per-patch MSE 4, mean over 10 removed
    assert model.forward_loss(imgs, pred, mask).item() == pytest.approx(0.4)


def test_norm_pix_loss_target_is_standardised_per_patch():
    model = create_model("tiny", norm_pix_loss=True)
    imgs = torch.randn(1, 3, 32, 32)
    target = model.patchify(imgs)
    normed = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6) ** 0.5
    mask = torch.ones(1, 64)
    assert model.forward_loss(imgs, normed, mask).item() == pytest.approx(0.0, abs=1e-10)


def test_ycbcr_matrix_and_weighted_mse():
    white = torch.ones(3, 1, 1)
    assert rgb_to_ycbcr(white).flatten() * 255 == pytest.approx([235.0, 128.0, 128.0], abs=1e-3)
    black = torch.zeros(3, 1, 1)
    assert rgb_to_ycbcr(black).flatten() * 255 == pytest.approx([16.0, 128.0, 128.0], abs=1e-4)
    rgb = torch.rand(2, 3, 4, 4)
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-5)
    # one patch of 2 pixels x 3 channels: errors (1, 0, 0) and (0, 1, 1)
    pred = torch.tensor([[[1.0, 0, 0, 0, 1, 1]]])
    target = torch.zeros(1, 1, 6)
    loss = masked_mean(patch_errors(pred, target, YCBCR_WEIGHTS), torch.ones(1, 1))
    assert loss.item() == pytest.approx((1.20 + (0.90 + 0.90)) / 2)


def test_ycbcr_model_predicts_in_ycbcr_space():
    model = create_model("tiny", loss_target="ycbcr")
    loss, _, _ = model(torch.randn(2, 3, 32, 32), 0.75, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)


def test_encode_without_masking_keeps_natural_order():
    model = create_model("tiny").eval()
    imgs = torch.randn(2, 3, 32, 32)
    out = model.encode(imgs, 0.0)
    assert out.tokens.shape == (2, 65, 64)
    assert torch.equal(out.ids_keep, torch.arange(64).expand(2, 64))
    assert out.mask.sum() == 0
    raw = model.encode(imgs, 0.0, apply_norm=False)
    assert torch.allclose(model.norm(raw.tokens), out.tokens, atol=1e-6)


def test_encoder_only_model_refuses_reconstruction():
    model = create_model("tiny", decoder_depth=0)
    assert not any(k.startswith("decoder") for k in model.state_dict())
    assert model.encode(torch.randn(1, 3, 32, 32), 0.75).tokens.shape == (1, 17, 64)
    with pytest.raises(MaelensError, match="no decoder"):
        model(torch.randn(1, 3, 32, 32))


def test_bad_configs_are_rejected():
    with pytest.raises(ConfigError, match="unknown preset"):
        create_model("nope")
    with pytest.raises(ConfigError, match="unknown model option"):
        create_model("tiny", depht=3)
    with pytest.raises(ConfigError, match="loss_target"):
        create_model("tiny", loss_target="lab")
