"""The Segmenter on an MAE encoder: shapes, the mask transformer's scalar products, encoder loading."""

import pytest
import torch

from maelens import create_model
from maelens.checkpoint import save_checkpoint
from maelens.errors import ConfigError
from maelens.segmentation import (
    MaskTransformer,
    Segmenter,
    segmenter_from_checkpoint,
    segmenter_from_mae,
    segmenter_from_scratch,
)
from maelens.segmentation.optim import layer_id, param_groups


def images(n=2, size=32):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("decoder", ["linear", "mask"])
def test_logits_cover_the_image(decoder):
    seg = segmenter_from_scratch("tiny", 5, decoder)
    out = seg(images())
    assert out.shape == (2, 5, 32, 32)
    assert not seg.encoder.has_decoder  # the MAE's pixel decoder is not built


def test_encoder_sees_every_patch_in_order_with_the_final_norm():
    seg = segmenter_from_scratch("tiny", 3).eval()
    x = images()
    tokens = seg.patch_tokens(x)
    enc = seg.encoder
    ref = enc.patch_embed(x) + enc.pos_embed[:, 1:]
    ref = torch.cat([(enc.cls_token + enc.pos_embed[:, :1]).expand(2, -1, -1), ref], 1)
    for blk in enc.blocks:
        ref = blk(ref)
    torch.testing.assert_close(tokens, enc.norm(ref)[:, 1:])


def test_mask_transformer_masks_are_normalised_scalar_products():
    dec = MaskTransformer(16, 4, num_heads=2).eval()
    tokens = torch.randn(3, 64, 16)
    patches, classes = dec.embeddings(tokens)
    assert patches.shape == (3, 64, 16) and classes.shape == (3, 4, 16)
    torch.testing.assert_close(patches.norm(dim=-1), torch.ones(3, 64))
    torch.testing.assert_close(classes.norm(dim=-1), torch.ones(3, 4))
    masks = dec.masks(tokens)
    manual = torch.einsum("bld,bkd->blk", patches, classes)
    torch.testing.assert_close(masks, manual)
    assert masks.abs().max() <= 1 + 1e-5
    out = dec(tokens, (8, 8))
    assert out.shape == (3, 4, 8, 8)
    torch.testing.assert_close(out.flatten(2).transpose(1, 2), dec.mask_norm(masks))


def test_loading_an_mae_copies_exactly_its_encoder(tmp_path):
    torch.manual_seed(1)
    mae = create_model("tiny")
    with torch.no_grad():
        for p in mae.parameters():
            p.add_(torch.randn_like(p))  # far from any fresh initialisation
    save_checkpoint(tmp_path / "mae.pt", mae)
    torch.manual_seed(5)
    fresh = Segmenter(mae.config, 4, "mask").decoder.state_dict()
    torch.manual_seed(5)
    seg = segmenter_from_mae(mae, 4, "mask")
    loaded = segmenter_from_checkpoint(tmp_path / "mae.pt", 4, "mask")
    full = mae.state_dict()
    for s in (seg, loaded):
        enc = s.encoder.state_dict()
        assert set(enc) == {k for k in full if not k.startswith("decoder_") and k != "mask_token"}
        for key, value in enc.items():
            assert torch.equal(value, full[key]), key
    # the segmentation decoder is exactly a freshly initialised one
    dec = seg.decoder.state_dict()
    assert dec.keys() == fresh.keys() and all(torch.equal(dec[k], fresh[k]) for k in dec)


def test_from_scratch_has_no_pretrained_weight():
    torch.manual_seed(1)
    mae = create_model("tiny")
    with torch.no_grad():
        for p in mae.parameters():
            p.add_(1.0)
    seg = segmenter_from_scratch("tiny", 4)
    full = mae.state_dict()
    for key, value in seg.encoder.state_dict().items():
        if key != "pos_embed":  # the fixed sin-cos table is the same by construction
            assert not torch.equal(value, full[key]), key
    torch.testing.assert_close(seg.encoder.norm.weight, torch.ones(64))  # MAE's initialisation


def test_bad_arguments():
    with pytest.raises(ConfigError, match="decoder"):
        segmenter_from_scratch("tiny", 4, "conv")
    with pytest.raises(ConfigError, match="num_classes"):
        segmenter_from_scratch("tiny", 1)


def test_layer_decay_scales_by_depth():
    seg = segmenter_from_scratch("tiny", 4)  # depth 3
    assert layer_id("encoder.patch_embed.proj.weight", 3) == 0
    assert layer_id("encoder.blocks.2.mlp.fc1.weight", 3) == 3
    assert layer_id("encoder.norm.weight", 3) == layer_id("decoder.head.weight", 3) == 4
    groups = param_groups(seg, 0.05, 0.5, 3)
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    assert scale[id(seg.encoder.patch_embed.proj.weight)] == 0.5 ** 4
    assert scale[id(seg.encoder.blocks[0].attn.qkv.weight)] == 0.5 ** 3
    assert scale[id(seg.decoder.head.weight)] == 1.0
    decay = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert decay[id(seg.decoder.head.bias)] == 0.0 and decay[id(seg.decoder.head.weight)] == 0.05
