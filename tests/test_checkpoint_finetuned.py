"""Official fine-tuned and linear-probe files, wrapper prefixes, other input sizes, NaN weights and files
that are not checkpoints (issues 13 and 16). The fine-tuned files are written from timm's
VisionTransformer, the module facebookresearch/mae ``models_vit.py`` subclasses, under the official key
names; the pooled feature must equal the one its classifier reads (``forward_head(pre_logits=True)``)."""

import argparse
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from test_checkpoint import assert_same_outputs, scrambled
from timm.models.vision_transformer import VisionTransformer

from maelens import create_model
from maelens.analysis.features import FeatureSet, extract_features
from maelens.checkpoint import load_checkpoint
from maelens.cli import main
from maelens.data import load_dataset
from maelens.errors import CheckpointError, DataError
from maelens.models.pos_embed import sincos_2d

# the tiny preset's encoder (32x32, patch 4, 3 blocks x 4 heads x 64, MLP ratio 2): heads known from shapes
TINY = dict(img_size=32, patch_size=4, embed_dim=64, depth=3, num_heads=4, mlp_ratio=2.0, num_classes=10)


def finetuned(global_pool: bool, linear_probe: bool = False) -> VisionTransformer:
    """An official-style fine-tuned ViT: ``--global_pool`` gives fc_norm and no norm, else norm and CLS."""
    torch.manual_seed(0)
    model = VisionTransformer(**TINY, global_pool="avg" if global_pool else "token")
    if linear_probe:  # main_linprobe.py: BatchNorm1d without affine before the linear head
        model.head = torch.nn.Sequential(torch.nn.BatchNorm1d(64, affine=False, eps=1e-6), model.head)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model.eval()


def reference(model: VisionTransformer, x: torch.Tensor) -> torch.Tensor:
    """The feature the classifier reads: official forward_features of models_vit.py, timm's pre-logits."""
    with torch.no_grad():
        return model.forward_head(model.forward_features(x), pre_logits=True)


def images(size=32, n=3):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("global_pool,linear_probe", [(True, False), (False, False), (True, True)])
def test_official_finetuned_and_linear_probe_files_load_with_their_pooling(tmp_path, global_pool, linear_probe):
    ref = finetuned(global_pool, linear_probe)
    state = ref.state_dict()
    assert ("fc_norm.weight" in state) == global_pool and ("norm.weight" in state) != global_pool
    args = argparse.Namespace(model="vit_base_patch16", global_pool=global_pool, nb_classes=10, input_size=32)
    torch.save({"model": state, "optimizer": {"state": {}, "param_groups": []}, "epoch": 99, "args": args},
               tmp_path / "checkpoint-99.pth")
    ckpt = load_checkpoint(tmp_path / "checkpoint-99.pth")
    assert ckpt.release == ("linear-probe" if linear_probe else "fine-tuned") and ckpt.epoch == 99
    assert not ckpt.config.has_decoder and ckpt.config.num_heads == 4  # the shapes match the tiny encoder
    head = ckpt.model.encoder_head
    assert (head.pool, head.fc_norm, head.final_norm) == (("avg", True, False) if global_pool else ("cls", False, True))
    classifier = "BatchNorm1d + Linear 64->10" if linear_probe else "Linear 64->10"
    assert any(f"classifier not loaded ({classifier})" in n for n in ckpt.notes)
    assert ckpt.provenance["pooling"].startswith("fc_norm.* present, no norm.*" if global_pool else "head.* present")
    assert ckpt.settings()["classifier_pooling"] == head.describe()
    x = images()
    with torch.no_grad():
        tokens = ckpt.model.encode(x, mask_ratio=0.0).tokens
        assert torch.equal(ckpt.model.pool_features(tokens), reference(ref, x))
        # the tokens themselves are the blocks' output (after norm when the model keeps it)
        assert torch.equal(tokens, ref.forward_features(x))


def test_features_of_a_finetuned_file_default_to_its_pooled_feature(tmp_path, capsys):
    ref = finetuned(global_pool=True)
    torch.save({"model": ref.state_dict()}, tmp_path / "ft.pth")
    out = tmp_path / "f.npz"
    assert main(["features", "--ckpt", str(tmp_path / "ft.pth"), "--num-images", "10", "--quiet",
                 "--out", str(out)]) == 0
    fs = FeatureSet.load(out)
    assert fs.settings["pool"] == "head" and fs.settings["pool_requested"] == "auto"
    assert fs.settings["pooling"] == "fine-tuned feature: mean of the patch tokens, then fc_norm"
    assert fs.settings["release"] == "fine-tuned"
    data = load_dataset("bundled", image_size=32, split="test", limit=10)
    want = reference(ref, torch.stack([data[i][0] for i in range(len(data))])).numpy()
    np.testing.assert_array_equal(fs.features, want)
    # a pretrained MAE has no such feature: auto is the mean of the patch tokens, head is refused
    mae = create_model("tiny").eval()
    assert extract_features(mae, data).settings["pool"] == "mean"
    with pytest.raises(DataError, match="was not fine-tuned"):
        extract_features(mae, data, pool="head")


@pytest.mark.parametrize("prefix", ["backbone.", "encoder.", "model.", "module.backbone.", "model.module."])
def test_wrapper_prefixes_are_removed_when_every_key_has_them(tmp_path, prefix):
    model = scrambled(create_model("tiny"))
    save_file({prefix + k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "w.safetensors"))
    ckpt = load_checkpoint(tmp_path / "w.safetensors")
    assert ckpt.format == "official"
    holders = [p for p in prefix.split(".") if p and p != "module"]
    assert all(any(f"prefix '{h}.' removed" in n for n in ckpt.notes) for h in holders)
    assert_same_outputs(model, ckpt.model)


def test_a_prefix_is_kept_when_what_remains_is_not_a_vit_and_mismatches_name_the_keys(tmp_path):
    torch.save({"model.weight": torch.zeros(3), "model.bias": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="unknown checkpoint format.*model.weight"):
        load_checkpoint(tmp_path / "other.pth")
    state = create_model("tiny").state_dict()
    state["blocks.2.extra.weight"] = state.pop("blocks.2.attn.proj.weight")
    torch.save(state, tmp_path / "renamed.pth")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "renamed.pth")
    message = str(err.value)
    assert "lacks tensor(s) blocks.2.attn.proj.weight" in message
    assert "does not use: blocks.2.extra.weight" in message and message.count("\n") == 0


def test_other_input_size_regenerates_the_sincos_tables_exactly(tmp_path):
    model = scrambled(create_model("tiny"))
    torch.save({"model": model.state_dict()}, tmp_path / "tiny.pth")
    ckpt = load_checkpoint(tmp_path / "tiny.pth", image_size=64)
    assert ckpt.config.img_size == 64 and ckpt.model.grid_size == (16, 16)
    assert ckpt.provenance["pos_embed"] == "2-D sin-cos table regenerated for the 16x16 grid (exact)"
    assert ckpt.provenance["decoder_pos_embed"] == "2-D sin-cos table regenerated for the 16x16 grid (exact)"
    table = torch.from_numpy(sincos_2d(64, (16, 16))).unsqueeze(0)
    assert torch.equal(ckpt.model.pos_embed, table)
    # exactly the model built at 64x64 with the same weights
    at64 = create_model("tiny", img_size=64)
    at64.load_state_dict({k: v for k, v in model.state_dict().items() if "pos_embed" not in k}, strict=False)
    assert_same_outputs(at64.eval(), ckpt.model, size=64)
    with pytest.raises(CheckpointError, match="image_size=30 is not a multiple of the patch size 4"):
        load_checkpoint(tmp_path / "tiny.pth", image_size=30)


def test_other_input_size_of_a_hugging_face_folder(tmp_path):
    from test_checkpoint_formats import write_hf

    model = scrambled(create_model("tiny", num_heads=8, decoder_num_heads=2))
    write_hf(tmp_path / "hf", model, "safetensors")
    ckpt = load_checkpoint(tmp_path / "hf", image_size=48)
    at48 = create_model("tiny", num_heads=8, decoder_num_heads=2, img_size=48)
    at48.load_state_dict({k: v for k, v in model.state_dict().items() if "pos_embed" not in k}, strict=False)
    assert ckpt.config.img_size == 48 and ckpt.config.num_heads == 8
    assert_same_outputs(at48.eval(), ckpt.model, size=48)


def test_image_size_on_the_command_line_is_recorded_in_the_settings(tmp_path):
    torch.save({"model": create_model("tiny").state_dict()}, tmp_path / "tiny.pth")
    assert main(["features", "--ckpt", str(tmp_path / "tiny.pth"), "--image-size", "48", "--num-images", "4",
                 "--quiet", "--out", str(tmp_path / "f.npz")]) == 0
    settings = FeatureSet.load(tmp_path / "f.npz").settings
    assert settings["image_size"] == 48 and settings["model"]["img_size"] == 48
    assert settings["provenance"]["img_size"] == "given (--image-size 48; the checkpoint's is 32)"


def test_nonfinite_weights_are_refused_with_their_names_unless_allowed(tmp_path, capsys):
    state = create_model("tiny").state_dict()
    state["blocks.1.attn.qkv.weight"][0, 0] = float("nan")
    state["decoder_pred.bias"][2] = float("inf")
    torch.save({"model": state}, tmp_path / "nan.pth")
    with pytest.raises(CheckpointError, match="NaN or infinite weights in 2 tensor.*blocks.1.attn.qkv.weight, "
                                              "decoder_pred.bias.*--allow-nonfinite"):
        load_checkpoint(tmp_path / "nan.pth")
    ckpt = load_checkpoint(tmp_path / "nan.pth", allow_nonfinite=True)
    assert any("loaded for inspection only" in n for n in ckpt.notes)
    assert main(["features", "--ckpt", str(tmp_path / "nan.pth"), "--out", str(tmp_path / "f.npz")]) == 2
    assert "NaN or infinite" in capsys.readouterr().err and not (tmp_path / "f.npz").exists()
    assert main(["info", "--ckpt", str(tmp_path / "nan.pth"), "--allow-nonfinite", "--json"]) == 0
    assert any("blocks.1.attn.qkv.weight" in n for n in json.loads(capsys.readouterr().out)["notes"])


@pytest.mark.parametrize("content,expected", [
    (bytes(range(7, 255)) * 10, "neither a zip archive nor a pickle"),
    (b'{"hidden_size": 64, "model_type": "vit_mae"}', "JSON model config, not weights"),
    (b'[1, 2, 3]', "JSON file, not weights"),
    (b"weights: none\n", "text file, not weights"),
])
def test_files_that_are_not_pickles_are_not_refused_for_safety(tmp_path, capsys, content, expected):
    (tmp_path / "w.pth").write_bytes(content)
    assert main(["info", "--ckpt", str(tmp_path / "w.pth")]) == 2
    err = capsys.readouterr().err
    assert "is not a PyTorch checkpoint or weight file" in err and expected in err
    assert "safety" not in err and err.count("\n") == 1


@pytest.mark.parametrize("pre,expected", [
    ('{"image_mean": [0.5, 0.5', "is not a readable JSON file"),
    ('{"image_mean": [0.5, 0.5], "image_std": [1, 1, 1]}', "image_mean must be a number or a list of 3 numbers"),
    ('{"image_mean": 0.5, "image_std": [0.2, 0, 0.2]}', "image_std must be > 0"),
    ('{"image_std": [0.2, 0.2, 0.2]}', "gives image_std without image_mean"),
])
def test_a_broken_preprocessor_config_is_reported_under_its_own_name(tmp_path, pre, expected):
    from test_checkpoint_formats import write_hf

    model = scrambled(create_model("tiny", num_heads=8, decoder_num_heads=2))
    write_hf(tmp_path / "hf", model, "safetensors")
    (tmp_path / "hf" / "preprocessor_config.json").write_text(pre)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "hf")
    assert "preprocessor_config.json" in str(err.value) and expected in str(err.value)
    assert "config.json:" not in str(err.value).replace("preprocessor_config.json", "")


def test_a_hugging_face_image_classifier_loads_as_a_cls_pooled_encoder(tmp_path):
    from test_checkpoint_formats import to_hf

    model = scrambled(create_model("tiny"))
    encoder = {k: v for k, v in model.state_dict().items() if not k.startswith(("decoder", "mask_token"))}
    weights = to_hf(encoder) | {"classifier.weight": torch.zeros(5, 64), "classifier.bias": torch.zeros(5)}
    save_file(weights, str(tmp_path / "model.safetensors"))
    from test_checkpoint_formats import hf_config

    config = hf_config(model.config) | {"model_type": "vit", "architectures": ["ViTForImageClassification"]}
    (tmp_path / "config.json").write_text(json.dumps(config))
    ckpt = load_checkpoint(tmp_path / "model.safetensors")
    assert ckpt.format == "huggingface" and ckpt.release == "fine-tuned"
    assert ckpt.provenance["layer_norm_eps"] == "config.json" and ckpt.provenance["num_heads"] == "config.json"
    assert ckpt.model.encoder_head.pool == "cls" and any("Linear 64->5" in n for n in ckpt.notes)
    x = images()
    with torch.no_grad():
        tokens = model.encode(x, mask_ratio=0.0).tokens
        assert torch.equal(ckpt.model.pool_features(ckpt.model.encode(x, mask_ratio=0.0).tokens), tokens[:, 0])
