"""Foreign checkpoint formats, each written here from its key scheme (no downloads): official
facebookresearch/mae files, Hugging Face ViTMAE folders, timm-style encoder-only weights, and
architecture inference from tensor shapes. Loading must reproduce the source model's outputs exactly."""

import argparse
import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import save_file
from test_checkpoint import assert_same_outputs, scrambled

from maelens import create_model
from maelens.checkpoint import detect_format, load_checkpoint, match_preset
from maelens.errors import CheckpointError, MaelensError
from maelens.models import PRESETS

BLOCK_KEYS = ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2")


def encoder_tokens(model, size=32):
    imgs = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return model.encode(imgs, mask_ratio=0.0).tokens


# ---- official facebookresearch/mae -------------------------------------------------------------
def test_official_released_file_loads_with_identical_outputs(tmp_path):
    model = scrambled(create_model("tiny"))
    torch.save({"model": model.state_dict()}, tmp_path / "mae_visualize_tiny.pth")
    ckpt = load_checkpoint(tmp_path / "mae_visualize_tiny.pth")
    assert ckpt.format == "official" and ckpt.config.name == "tiny" and ckpt.epoch is None
    # the visualize releases were trained with pixel targets: known, not assumed
    assert ckpt.provenance["norm_pix_loss"].startswith("False: an official visualize release")
    assert ckpt.release == "full" and not ckpt.config.norm_pix_loss
    assert_same_outputs(model, ckpt.model)
    torch.save({"model": model.state_dict()}, tmp_path / "released.pth")
    assert any("norm_pix_loss not stored" in n for n in load_checkpoint(tmp_path / "released.pth").notes)


def test_official_training_checkpoint_with_args_namespace(tmp_path):
    model = scrambled(create_model("tiny", norm_pix_loss=True))
    opt = torch.optim.AdamW(model.parameters(), lr=1.5e-4, betas=(0.9, 0.95))
    state = {k: v for k, v in model.state_dict().items() if k not in ("pos_embed", "decoder_pos_embed")}
    args = argparse.Namespace(batch_size=64, epochs=800, accum_iter=1, model="mae_vit_base_patch16", input_size=32,
                              mask_ratio=0.75, norm_pix_loss=True, weight_decay=0.05, lr=None, blr=1.5e-4,
                              output_dir="./output_dir", device="cuda", distributed=False)
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}, "optimizer": opt.state_dict(), "epoch": 41,
                "scaler": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
                           "_growth_tracker": 7},
                "args": args}, tmp_path / "checkpoint-41.pth")
    ckpt = load_checkpoint(tmp_path / "checkpoint-41.pth")
    assert ckpt.format == "official" and ckpt.epoch == 41
    assert ckpt.config.norm_pix_loss and ckpt.train_config["model"] == "mae_vit_base_patch16"
    assert any("args.model is mae_vit_base_patch16 but the tensor widths do not fit mae-base" in n
               for n in ckpt.notes)
    assert ckpt.provenance["num_heads"].startswith("preset tiny")  # the shapes decide, not the name
    assert ckpt.raw["scaler"]["_growth_tracker"] == 7 and "optimizer" in ckpt.raw
    assert any("not stored: using the fixed 2-D sin-cos table" in n for n in ckpt.notes)
    assert_same_outputs(model, ckpt.model)


def test_ipol64_survives_a_round_trip_with_the_config_inferred_from_shapes(tmp_path):
    model = scrambled(create_model("ipol64"))
    torch.save(model.state_dict(), tmp_path / "ipol.pth")
    ckpt = load_checkpoint(tmp_path / "ipol.pth")
    assert ckpt.config.name == "ipol64" and match_preset(ckpt.config) == "ipol64"
    arch = ("img_size", "patch_size", "embed_dim", "depth", "num_heads", "decoder_embed_dim", "decoder_depth",
            "decoder_num_heads", "mlp_ratio", "qkv_bias")
    assert all(getattr(ckpt.config, f) == getattr(PRESETS["ipol64"], f) for f in arch)
    assert ckpt.model.num_trainable_parameters() == 8_915_872
    assert_same_outputs(model, ckpt.model, size=64)


def test_custom_architecture_without_head_counts_is_refused_then_exact_with_them(tmp_path):
    model = scrambled(create_model("tiny", embed_dim=96, num_heads=3, depth=2, decoder_embed_dim=32,
                                   decoder_num_heads=2, qkv_bias=False, mlp_ratio=3.0))
    torch.save({"model": model.state_dict()}, tmp_path / "custom.pth")
    with pytest.raises(CheckpointError) as refused:  # never a guessed head count (issue 13)
        load_checkpoint(tmp_path / "custom.pth")
    message = str(refused.value)
    assert "num_heads=H and decoder_num_heads=H" in message and "encoder width 96" in message
    assert "decoder width 32" in message
    with pytest.raises(CheckpointError, match="decoder_num_heads=H"):
        load_checkpoint(tmp_path / "custom.pth", num_heads=3)
    described = load_checkpoint(tmp_path / "custom.pth", require_heads=False)
    assert not described.heads_known and described.provenance["num_heads"] == "not stored"
    assert described.model.num_trainable_parameters() == model.num_trainable_parameters()
    fixed = load_checkpoint(tmp_path / "custom.pth", num_heads=3, decoder_num_heads=2)
    c = fixed.config
    assert (c.name, c.embed_dim, c.depth, c.decoder_embed_dim, c.decoder_depth) == ("custom", 96, 2, 32, 4)
    assert (c.mlp_ratio, c.qkv_bias, c.img_size, c.patch_size) == (3.0, False, 32, 4)
    assert fixed.heads_known and fixed.provenance["num_heads"] == "given (--num-heads)"
    assert_same_outputs(model, fixed.model)
    with pytest.raises(MaelensError, match="num_heads=5 does not divide"):  # the given value is blamed
        load_checkpoint(tmp_path / "custom.pth", num_heads=5, decoder_num_heads=2)


def test_official_args_model_gives_the_head_counts_at_another_resolution(tmp_path):
    # mae_vit_base_patch16 widths (768 / 512; 12 and 16 heads) trained at 32x32: no preset matches the
    # shapes, but the training script's args.model names the architecture
    model = scrambled(create_model("mae-base", img_size=32, depth=1, decoder_depth=1,
                                    norm_pix_loss=True))
    args = argparse.Namespace(model="mae_vit_base_patch16", input_size=32, norm_pix_loss=True)
    torch.save({"model": model.state_dict(), "args": args, "epoch": 3}, tmp_path / "base32.pth")
    ckpt = load_checkpoint(tmp_path / "base32.pth")
    assert (ckpt.config.num_heads, ckpt.config.decoder_num_heads) == (12, 16)
    assert ckpt.provenance["num_heads"] == "args.model mae_vit_base_patch16 (mae-base)"
    assert ckpt.provenance["norm_pix_loss"] == "args.norm_pix_loss"
    assert_same_outputs(model, ckpt.model)
    # the released weights file of the same model (no args) must be told
    torch.save({"model": model.state_dict()}, tmp_path / "plain.pth")
    with pytest.raises(CheckpointError, match="num_heads="):
        load_checkpoint(tmp_path / "plain.pth")


def test_mismatched_decoder_mlp_ratio_is_a_clear_error(tmp_path):
    state = create_model("tiny").state_dict()
    state["decoder_blocks.0.mlp.fc1.weight"] = torch.zeros(200, 48)
    torch.save(state, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match="decoder MLP ratio"):
        load_checkpoint(tmp_path / "odd.pth")


# ---- Hugging Face ViTMAE --------------------------------------------------------------------------
def to_hf(state, encoder_prefix="vit.", style="4.x"):
    """Official MAE names to transformers ViTMAE names, written out from modeling_vit_mae.py.

    ``style``: "4.x" (hub files), "5.x-saved" (save_pretrained of transformers 5: decoder layers
    under ``decoder_encoder.layer``), "5.x-native" (a transformers 5 module's own state_dict).
    """
    out, used = {}, set()
    native = style == "5.x-native"

    def put(hf_key, key, value=None):
        out[hf_key] = (state[key] if value is None else value).clone().contiguous()
        used.add(key)

    put(f"{encoder_prefix}embeddings.cls_token", "cls_token")
    put(f"{encoder_prefix}embeddings.position_embeddings", "pos_embed")
    for kind in ("weight", "bias"):
        put(f"{encoder_prefix}embeddings.patch_embeddings.projection.{kind}", f"patch_embed.proj.{kind}")
        put(f"{encoder_prefix}layernorm.{kind}", f"norm.{kind}")
    layers = [("blocks", f"{encoder_prefix}{'layers' if native else 'encoder.layer'}")]
    if "decoder_embed.weight" in state:
        decoder_layers = "decoder.decoder_encoder.layer" if style == "5.x-saved" else "decoder.decoder_layers"
        layers.append(("decoder_blocks", decoder_layers))
        put("decoder.mask_token", "mask_token")
        put("decoder.decoder_pos_embed", "decoder_pos_embed")
        for kind in ("weight", "bias"):
            for name in ("decoder_embed", "decoder_norm", "decoder_pred"):
                put(f"decoder.{name}.{kind}", f"{name}.{kind}")
    for ours, theirs in layers:
        depth = len({k.split(".")[1] for k in state if k.startswith(ours + ".")})
        for i in range(depth):
            o, h = f"{ours}.{i}.", f"{theirs}.{i}."
            for kind in ("weight", "bias"):
                qkv = state[o + f"attn.qkv.{kind}"]
                names = ("q_proj", "k_proj", "v_proj") if native else ("attention.query", "attention.key",
                                                                       "attention.value")
                for name, part in zip(names, qkv.chunk(3, dim=0)):
                    put(h + f"attention.{name}.{kind}", o + f"attn.qkv.{kind}", part)
                proj = "attention.o_proj" if native else "attention.output.dense"
                put(h + f"{proj}.{kind}", o + f"attn.proj.{kind}")
                put(h + f"layernorm_before.{kind}", o + f"norm1.{kind}")
                put(h + f"layernorm_after.{kind}", o + f"norm2.{kind}")
                put(h + (f"mlp.fc1.{kind}" if native else f"intermediate.dense.{kind}"), o + f"mlp.fc1.{kind}")
                put(h + (f"mlp.fc2.{kind}" if native else f"output.dense.{kind}"), o + f"mlp.fc2.{kind}")
    assert used == set(state), set(state) - used
    return out


def hf_config(config, eps=1e-6):
    hidden = int(config.embed_dim * config.mlp_ratio)
    return {"model_type": "vit_mae", "architectures": ["ViTMAEForPreTraining"], "hidden_size": config.embed_dim,
            "num_hidden_layers": config.depth, "num_attention_heads": config.num_heads, "intermediate_size": hidden,
            "decoder_hidden_size": config.decoder_embed_dim, "decoder_num_hidden_layers": config.decoder_depth,
            "decoder_num_attention_heads": config.decoder_num_heads,
            "decoder_intermediate_size": int(config.decoder_embed_dim * config.mlp_ratio),
            "image_size": config.img_size, "patch_size": config.patch_size, "num_channels": 3, "qkv_bias": True,
            "layer_norm_eps": eps, "norm_pix_loss": config.norm_pix_loss, "mask_ratio": 0.6, "hidden_act": "gelu"}


@pytest.fixture
def hf_model():
    # Head counts unlike any preset's, so they must come from config.json, not from shape matching.
    return scrambled(create_model("tiny", num_heads=8, decoder_num_heads=2, norm_pix_loss=True))


def write_hf(folder, model, layout, style="4.x"):
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(hf_config(model.config)))
    weights = to_hf(model.state_dict(), style=style)
    if layout == "bin":
        torch.save(weights, folder / "pytorch_model.bin")
    elif layout == "sharded":
        keys = sorted(weights)
        shards = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
        for name, part in shards.items():
            save_file({k: weights[k] for k in part}, str(folder / name))
        index = {"metadata": {}, "weight_map": {k: name for name, part in shards.items() for k in part}}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    else:
        save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})


@pytest.mark.parametrize("layout,target,style", [
    ("safetensors", "", "4.x"), ("safetensors", "model.safetensors", "4.x"), ("safetensors", "config.json", "4.x"),
    ("bin", "", "4.x"), ("sharded", "", "4.x"), ("safetensors", "", "5.x-saved"), ("bin", "", "5.x-native"),
])
def test_huggingface_vitmae_loads_with_identical_outputs(tmp_path, hf_model, layout, target, style):
    write_hf(tmp_path / "vit-mae-tiny", hf_model, layout, style)
    path = tmp_path / "vit-mae-tiny" / target
    ckpt = load_checkpoint(path)
    assert ckpt.format == detect_format(path) == "huggingface"
    assert (ckpt.config.num_heads, ckpt.config.decoder_num_heads, ckpt.config.norm_pix_loss) == (8, 2, True)
    assert ckpt.train_config == {"mask_ratio": 0.6, "norm_pix_loss": True} and not ckpt.notes
    assert_same_outputs(hf_model, ckpt.model)


def test_huggingface_layer_norm_eps_and_normalisation_are_taken_from_the_folder(tmp_path, hf_model):
    folder = tmp_path / "hf"
    write_hf(folder, hf_model, "safetensors")
    (folder / "config.json").write_text(json.dumps(hf_config(hf_model.config, eps=1e-12)))
    (folder / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5, 0.5, 0.5],
                                                                 "image_std": [0.25, 0.25, 0.25]}))
    ckpt = load_checkpoint(folder)
    norms = [m for m in ckpt.model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(m.eps == 1e-12 for m in norms)
    assert ckpt.config.norm_mean == (0.5, 0.5, 0.5) and ckpt.config.norm_std == (0.25, 0.25, 0.25)
    assert any("eps 1e-12" in n for n in ckpt.notes) and ckpt.config.layer_norm_eps == 1e-12


def test_huggingface_encoder_only_vitmaemodel_weights(tmp_path, hf_model):
    encoder = {k: v for k, v in hf_model.state_dict().items() if not k.startswith(("decoder", "mask_token"))}
    folder = tmp_path / "vit-mae-model"
    folder.mkdir()
    save_file(to_hf(encoder, encoder_prefix=""), str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(hf_config(hf_model.config) | {"architectures": ["ViTMAEModel"]}))
    ckpt = load_checkpoint(folder)
    assert ckpt.format == "huggingface" and not ckpt.config.has_decoder
    assert torch.equal(encoder_tokens(hf_model), encoder_tokens(ckpt.model))


def test_huggingface_config_that_disagrees_with_the_weights_names_the_key(tmp_path, hf_model):
    folder = tmp_path / "hf"
    write_hf(folder, hf_model, "safetensors")
    (folder / "config.json").write_text(json.dumps(hf_config(hf_model.config) | {"hidden_size": 32,
                                                                                 "intermediate_size": 64}))
    expected = r"wrong shape for the custom model: decoder_embed.weight \(48, 64\) \(expected \(48, 32\)\)"
    with pytest.raises(CheckpointError, match=expected):
        load_checkpoint(folder)


# ---- encoder-only (timm vit_*_patch16_224.mae style, MAE pretrain release) --------------------------
@pytest.mark.parametrize("wrapper", ["timm-safetensors", "mae-pretrain-release"])
def test_encoder_only_weights_load_for_encoder_analyses(tmp_path, wrapper):
    model = scrambled(create_model("tiny"))
    encoder = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(("decoder", "mask_token"))}
    encoder.update({"fc_norm.weight": torch.ones(64), "fc_norm.bias": torch.zeros(64),
                    "head.weight": torch.zeros(10, 64), "head.bias": torch.zeros(10)})
    if wrapper == "timm-safetensors":
        path = tmp_path / "model.safetensors"
        save_file(encoder, str(path))
    else:
        path = tmp_path / "mae_pretrain_tiny.pth"
        torch.save({"model": encoder}, path)
    ckpt = load_checkpoint(path)
    assert ckpt.format == detect_format(path) == "encoder-only"
    assert not ckpt.config.has_decoder and not ckpt.model.has_decoder and ckpt.config.num_heads == 4
    assert any("fine-tuned classifier not loaded (Linear 64->10)" in n for n in ckpt.notes)
    assert ckpt.release == "fine-tuned" and ckpt.model.encoder_head.pool == "avg"
    assert torch.equal(encoder_tokens(model), encoder_tokens(ckpt.model))
    with pytest.raises(MaelensError, match="no decoder"):
        ckpt.model(torch.zeros(1, 3, 32, 32))


def test_preset_matching_names_presets_and_encoders():
    assert match_preset(PRESETS["mae-base"]) == "mae-base"
    assert match_preset(replace(PRESETS["mae-large"], decoder_depth=0)) == "mae-large"
    assert match_preset(replace(PRESETS["tiny"], num_heads=8)) is None
    assert match_preset(replace(PRESETS["tiny"], num_heads=8), heads=False) == "tiny"
