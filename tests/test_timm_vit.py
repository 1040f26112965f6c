"""timm Vision Transformers as maelens encoders (issue 13): small timm models are built and saved here
(nothing is downloaded), loaded with ``arch="timm:NAME"`` and checked against timm's own computation:
``forward_features`` and ``forward_head(pre_logits=True)`` to 1e-5, attention maps against a hand softmax
of q kᵀ, resized inputs against timm's dynamic-size resampling."""

import json

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file

from maelens.analysis.features import extract_features
from maelens.analysis.hooks import AttentionRecorder
from maelens.checkpoint import load_checkpoint
from maelens.cli import main
from maelens.data import load_dataset
from maelens.errors import CheckpointError, ConfigError

ARCH = "timm:vit_tiny_patch16_224"
SMALL = dict(img_size=32, patch_size=8, depth=2, num_classes=0)


def timm_vit(name="vit_tiny_patch16_224", **kwargs):
    """A small timm ViT with every parameter perturbed, so that a mis-mapped tensor shows."""
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, **{**SMALL, **kwargs}).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


def save(model, path):
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


def images(size=32, n=3):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(2))


def assert_close(got, want, tol=1e-5):
    assert got.shape == want.shape
    assert (got - want).abs().max().item() <= tol * max(1.0, want.abs().max().item())


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_timm_vit_features_equal_timm_forward_features(tmp_path, suffix):
    ref = timm_vit()
    ckpt = load_checkpoint(save(ref, tmp_path / f"weights{suffix}"), arch=ARCH)
    assert ckpt.format == "timm" and not ckpt.config.has_decoder and ckpt.release == "encoder-only"
    c = ckpt.config
    assert (c.img_size, c.patch_size, c.embed_dim, c.depth, c.num_heads) == (32, 8, 192, 2, 3)
    assert ckpt.provenance["num_heads"].startswith("timm vit_tiny_patch16_224")
    assert "max relative difference" in ckpt.provenance["conversion"]
    assert any("patch_size=8, depth=2" in n for n in ckpt.notes)  # said, with the name's defaults
    x = images()
    with torch.no_grad():
        tokens = ckpt.model.encode(x, mask_ratio=0.0).tokens
        assert_close(tokens, ref.forward_features(x))
        # timm's default global_pool='token': the CLS token after the final norm
        assert_close(ckpt.model.pool_features(tokens), ref.forward_head(ref.forward_features(x), pre_logits=True))
    assert ckpt.settings()["classifier_pooling"] == "CLS token after the final norm"


def test_average_pooled_timm_vit_with_fc_norm(tmp_path):
    ref = timm_vit(global_pool="avg")
    ckpt = load_checkpoint(save(ref, tmp_path / "avg.safetensors"), arch=ARCH)
    head = ckpt.model.encoder_head
    assert (head.pool, head.final_norm, head.fc_norm) == ("avg", False, True)
    x = images()
    with torch.no_grad():
        feats = ref.forward_head(ref.forward_features(x), pre_logits=True)
        assert_close(ckpt.model.pool_features(ckpt.model.encode(x, mask_ratio=0.0).tokens), feats)
    data = load_dataset("bundled", image_size=32, split="test", limit=6, mean=ckpt.config.norm_mean,
                        std=ckpt.config.norm_std)
    fs = extract_features(ckpt.model, data)  # pool "auto": the feature the model pools
    assert fs.settings["pool"] == "head" and "fc_norm" in fs.settings["pooling"]
    batch = torch.stack([data[i][0] for i in range(len(data))])
    with torch.no_grad():
        want = ref.forward_head(ref.forward_features(batch), pre_logits=True).numpy()
    assert np.abs(fs.features - want).max() <= 1e-5 * max(1.0, np.abs(want).max())


def test_layer_scale_and_a_position_table_without_cls_row_are_converted(tmp_path):
    ref = timm_vit(init_values=0.3, no_embed_class=True, qkv_bias=False)
    ckpt = load_checkpoint(save(ref, tmp_path / "deit3.pth"), arch=ARCH)
    assert any("LayerScale folded into 4" in n for n in ckpt.notes)
    assert any("zero CLS row" in n for n in ckpt.notes) and not ckpt.config.qkv_bias
    x = images()
    with torch.no_grad():
        assert_close(ckpt.model.encode(x, mask_ratio=0.0).tokens, ref.forward_features(x))


def test_recorded_attention_is_the_softmax_of_q_k_on_timm_blocks(tmp_path):
    ref = timm_vit()
    ckpt = load_checkpoint(save(ref, tmp_path / "w.safetensors"), arch=ARCH)
    x = images(n=2)

    def hand(model):
        """Each block's softmax(q kᵀ / sqrt(d)) from its own input, computed here step by step."""
        maps, h = [], model.patch_embed(x)
        h = torch.cat([model.cls_token.expand(2, -1, -1), h], 1) + model.pos_embed
        for blk in model.blocks:
            a = blk.attn
            qkv = a.qkv(blk.norm1(h)).reshape(2, h.shape[1], 3, a.num_heads, a.head_dim).permute(2, 0, 3, 1, 4)
            q, k = a.q_norm(qkv[0]), a.k_norm(qkv[1])
            maps.append(torch.softmax(q @ k.transpose(-2, -1) / a.head_dim ** 0.5, dim=-1))
            h = blk(h)
        return maps

    with torch.no_grad():
        want = hand(ref)
        with AttentionRecorder(ckpt.model, ("encoder",)) as rec:
            ckpt.model.encode(x, mask_ratio=0.0)
        for got, expected in zip(rec.maps["encoder"], want, strict=True):
            assert_close(got, expected)
        # the recorder also runs on timm's own model, q/k norms included
        qk = timm_vit(qk_norm=True)
        with AttentionRecorder(qk, ("encoder",)) as rec:
            qk.forward_features(x)
        for got, expected in zip(rec.maps["encoder"], hand(qk), strict=True):
            assert_close(got, expected)


def test_other_input_size_resamples_the_learned_table_as_timm_does(tmp_path):
    ref = timm_vit(dynamic_img_size=True)
    path = save(ref, tmp_path / "w.safetensors")
    ckpt = load_checkpoint(path, arch=ARCH, image_size=64)
    assert ckpt.config.img_size == 64 and ckpt.settings()["image_size"] == 64
    assert ckpt.provenance["pos_embed"].startswith("learned table resampled from 4x4 to 8x8 (bicubic")
    assert ckpt.provenance["img_size"] == "given (--image-size 64; the checkpoint's is 32)"
    x = images(size=64)
    with torch.no_grad():  # timm's dynamic image size resamples its table at every call, the same way
        assert_close(ckpt.model.encode(x, mask_ratio=0.0).tokens, ref.forward_features(x))
    with pytest.raises(CheckpointError, match="not a multiple of the patch size 8"):
        load_checkpoint(path, arch=ARCH, image_size=60)


@pytest.mark.parametrize("kwargs,reason", [
    ({"reg_tokens": 4}, "4 register tokens"),
    ({"class_token": False, "global_pool": "avg"}, "no CLS token"),
    ({"qk_norm": True}, "q/k normalisation (block 0)"),
    ({"global_pool": "map"}, "global_pool='map'"),
    ({"pos_embed": "none"}, "no absolute position embedding"),
])
def test_structures_maelens_cannot_represent_are_refused_with_the_reason(tmp_path, kwargs, reason):
    # the structure is read from the keys, so the file loads into timm and only the reason stops it
    path = save(timm_vit(**kwargs), tmp_path / "w.safetensors")
    with pytest.raises(CheckpointError, match="cannot be analysed as a maelens encoder") as refused:
        load_checkpoint(path, arch=ARCH)
    assert reason in str(refused.value)


def test_mismatched_files_and_names_are_one_clear_error(tmp_path):
    path = save(timm_vit(), tmp_path / "w.safetensors")
    with pytest.raises(CheckpointError, match="has no model named vit_nonexistent"):
        load_checkpoint(path, arch="timm:vit_nonexistent")
    with pytest.raises(CheckpointError, match="builds a timm VisionTransformerDistilled, not a plain"):
        load_checkpoint(path, arch="timm:deit_tiny_distilled_patch16_224")
    with pytest.raises(CheckpointError, match="expected timm:NAME"):
        load_checkpoint(path, arch="vit_tiny_patch16_224")
    with pytest.raises(CheckpointError, match=r"wrong shape of blocks.0.attn.proj.bias \(192,\) \(expected \(384,\)\)"):
        load_checkpoint(path, arch="timm:vit_small_patch16_224")
    state = timm_vit().state_dict()
    state["extra.weight"] = state.pop("blocks.1.mlp.fc2.weight")
    torch.save(state, tmp_path / "renamed.pth")
    with pytest.raises(CheckpointError, match="missing blocks.1.mlp.fc2.weight; unexpected extra.weight"):
        load_checkpoint(tmp_path / "renamed.pth", arch=ARCH)
    with pytest.raises(ConfigError, match="cannot be combined with arch=timm:"):
        load_checkpoint(path, arch=ARCH, num_heads=3)
    broken = timm_vit().state_dict()
    broken["blocks.0.mlp.fc1.bias"][0] = float("nan")
    torch.save(broken, tmp_path / "nan.pth")
    with pytest.raises(CheckpointError, match="NaN or infinite weights in 1 tensor.*: blocks.0.mlp.fc1.bias"):
        load_checkpoint(tmp_path / "nan.pth", arch=ARCH)
    inspected = load_checkpoint(tmp_path / "nan.pth", arch=ARCH, allow_nonfinite=True)
    assert any("loaded for inspection only" in n for n in inspected.notes)


def test_encoder_analyses_run_on_a_timm_vit_from_the_command_line(tmp_path, capsys):
    ref = timm_vit()
    path = str(save(ref, tmp_path / "w.safetensors"))
    common = ["--ckpt", path, "--arch", ARCH, "--num-images", "12", "--quiet"]
    assert main(["features", *common, "--out", str(tmp_path / "f.npz")]) == 0
    from maelens.analysis.features import FeatureSet

    fs = FeatureSet.load(tmp_path / "f.npz")
    assert fs.settings["pool"] == "head" and fs.settings["checkpoint_format"] == "timm"
    data = load_dataset("bundled", image_size=32, split="test", limit=12, mean=(0.5,) * 3, std=(0.5,) * 3)
    batch = torch.stack([data[i][0] for i in range(len(data))])
    with torch.no_grad():
        want = ref.forward_head(ref.forward_features(batch), pre_logits=True).numpy()
    assert np.abs(fs.features - want).max() <= 1e-5 * max(1.0, np.abs(want).max())
    assert main(["distfit", *common, "--mask-ratio", "0", "--rank-samples", "0", "--out", str(tmp_path / "d")]) == 0
    doc = json.loads((tmp_path / "d" / "distfit.json").read_text())
    assert doc["settings"]["checkpoint_format"] == "timm" and doc["num_samples"] == 12
    assert main(["evaluate", "--ckpt", path, "--arch", ARCH, "--num-images", "40", "--quiet", "--methods", "knn",
                 "--k", "3", "--out", str(tmp_path / "e")]) == 0
    report = json.loads((tmp_path / "e" / "evaluation.json").read_text())
    assert report["results"][0]["method"] == "knn" and report["results"][0]["n"] == 40
    capsys.readouterr()
    assert main(["info", "--ckpt", path, "--arch", ARCH, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["architecture"] == ARCH and info["classifier_pooling"] == "CLS token after the final norm"
    assert main(["attention-stats", *common, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no decoder" in err


def test_encoder_attention_stats_equal_the_full_report_and_run_without_a_decoder(tmp_path, capsys):
    from maelens import create_model
    from maelens.analysis.attention_dataset import attention_stats
    from maelens.analysis.encoder_attention import encoder_attention_stats

    mae = create_model("tiny").eval()
    data = load_dataset("bundled", image_size=32, split="test", limit=10)
    options = dict(masking="grid", mask_ratio=0.75, batch_size=4, seed=3)
    full = attention_stats(mae, data, encoder=True, num_examples=0, **options).encoder_layers
    alone = encoder_attention_stats(mae, data, **options).encoder_layers
    assert len(alone) == 3
    for a, b in zip(alone, full, strict=True):
        np.testing.assert_allclose(a["head_mean_attention_distance"], b["head_mean_attention_distance"], rtol=1e-12)
        np.testing.assert_allclose(a["head_entropy"], b["head_entropy"], rtol=1e-12)
    # a timm ViT has no decoder: --encoder gives its heads' distance and entropy
    path = str(save(timm_vit(), tmp_path / "w.safetensors"))
    assert main(["attention-stats", "--ckpt", path, "--arch", ARCH, "--encoder", "--mask-ratio", "0",
                 "--num-images", "6", "--quiet", "--out", str(tmp_path / "a")]) == 0
    import pandas as pd

    heads = pd.read_csv(tmp_path / "a" / "attention_heads.csv")
    assert len(heads) == 2 * 3 and set(heads["part"]) == {"encoder"}
    doc = json.loads((tmp_path / "a" / "attention_stats.json").read_text())
    assert doc["checkpoint_format"] == "timm" and doc["mask_ratio"] == 0 and len(doc["encoder_layers"]) == 2


def test_the_recorder_refuses_attention_it_cannot_recompute():
    from torch import nn

    class Other(nn.Module):  # e.g. relative position biases added to the logits: not visible in qkv
        def __init__(self):
            super().__init__()
            self.attn = nn.Identity()

    model = nn.Module()
    model.blocks = nn.ModuleList([Other()])
    with pytest.raises(ConfigError, match="block 0 .* uses Identity, not timm's Attention"):
        AttentionRecorder(model, ("encoder",))
