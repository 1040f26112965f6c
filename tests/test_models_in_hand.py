"""Model objects in hand (issue 27): a timm VisionTransformer and transformers ViTMAE / ViT objects go through
the analyses and ``load_model`` with the same numbers and provenance as their saved files."""

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file
from torch.utils.data import TensorDataset

import maelens
from maelens.analysis.attention_dataset import attention_stats
from maelens.analysis.cka import layer_cka
from maelens.analysis.distfit import encoder_samples, fit_samples
from maelens.analysis.encoder_attention import encoder_attention_stats
from maelens.analysis.features import extract_features
from maelens.checkpoint import load_checkpoint
from maelens.checkpoint.objects import as_model
from maelens.errors import CheckpointError, ConfigError

SMALL = dict(img_size=32, patch_size=8, depth=2, num_classes=0)


def perturbed(model):
    """``model`` with every parameter moved off its initialisation, so that a mis-mapped tensor shows."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model.eval()


def images(n=8, size=32):
    g = torch.Generator().manual_seed(2)
    return TensorDataset(torch.randn(n, 3, size, size, generator=g), torch.arange(n) % 2)


def same_numbers(a, b, data, *, decoder):
    """The four analyses of the issue give identical results on ``a`` and ``b``."""
    fa, fb = (extract_features(m, data, pool="mean", quiet=True) for m in (a, b))
    np.testing.assert_array_equal(fa.features, fb.features)
    if decoder:
        ra, rb = (attention_stats(m, data, top_n=3) for m in (a, b))
    else:
        ra, rb = (encoder_attention_stats(m, data) for m in (a, b))
    assert ra.to_frame().equals(rb.to_frame())
    ca, cb = (layer_cka(m, data, quiet=True) for m in (a, b))
    np.testing.assert_array_equal(ca.matrix, cb.matrix)
    da, db = (fit_samples(encoder_samples(m, data, quiet=True).features) for m in (a, b))
    assert da.to_frame().equals(db.to_frame())
    return fa


def test_timm_object_equals_its_file(tmp_path):
    torch.manual_seed(0)
    vit = perturbed(timm.create_model("vit_tiny_patch16_224", pretrained=False, **SMALL))
    path = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(path))
    from_file = load_checkpoint(path, arch="timm:vit_tiny_patch16_224")
    held = load_checkpoint(vit)
    assert held.format == "timm" and held.path is None and "in memory" in held.where
    assert held.provenance == from_file.provenance
    assert held.config == from_file.config
    assert held.settings()["checkpoint"] == held.where
    vit.train()
    feats = same_numbers(vit, from_file.model, images(), decoder=False)
    assert vit.training, "the object's mode is left as it was"
    # the conversion is exact: timm's own features, mean of the patch tokens after the final norm
    with torch.no_grad():
        want = vit.eval().forward_features(images().tensors[0])[:, 1:].mean(1).numpy()
    np.testing.assert_allclose(feats.features, want, atol=1e-5, rtol=1e-5)
    assert isinstance(maelens.load_model(vit), maelens.MaskedAutoencoderViT)


def test_timm_object_that_cannot_be_represented_is_refused():
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, reg_tokens=2, **SMALL)
    with pytest.raises(CheckpointError, match="register tokens"):
        extract_features(vit, images())


def test_maelens_object_is_used_as_it_is_and_loads_as_its_file(tmp_path):
    model = maelens.create_model("tiny").eval()
    assert as_model(model) is model
    path = maelens.save_checkpoint(tmp_path / "m.pt", model)
    held, from_file = load_checkpoint(model), load_checkpoint(path)
    assert held.provenance == from_file.provenance and held.config == from_file.config
    assert held.model is not model
    x = images(2).tensors[0]
    with torch.no_grad():
        np.testing.assert_array_equal(held.model.encode(x, 0.0).tokens, from_file.model.encode(x, 0.0).tokens)


def test_other_objects_are_refused_naming_the_parameter():
    with pytest.raises(ConfigError, match="^model: expected"):
        extract_features(torch.nn.Linear(2, 2), images())
    with pytest.raises(ConfigError, match="leave arch out"):
        load_checkpoint(maelens.create_model("tiny"), arch="timm:vit_tiny_patch16_224")
    with pytest.raises(ConfigError, match="^model_b: expected"):
        layer_cka(maelens.create_model("tiny"), images(), model_b="runs/x")


def hf_small(cls, **extra):
    transformers = pytest.importorskip("transformers")
    config_cls = transformers.ViTConfig if cls in ("ViTModel",) else transformers.ViTMAEConfig
    config = config_cls(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, **extra)
    torch.manual_seed(0)
    return perturbed(getattr(transformers, cls)(config))


@pytest.mark.parametrize("cls", ["ViTMAEForPreTraining", "ViTMAEModel"])
def test_transformers_vitmae_object_equals_its_folder(tmp_path, cls):
    extra = dict(decoder_hidden_size=16, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
                 decoder_intermediate_size=32) if cls == "ViTMAEForPreTraining" else {}
    hf = hf_small(cls, **extra)
    hf.save_pretrained(tmp_path / "hf")
    from_file, held = load_checkpoint(tmp_path / "hf"), load_checkpoint(hf)
    assert held.format == from_file.format == "huggingface"
    assert held.provenance == from_file.provenance and held.config == from_file.config
    assert held.config.has_decoder == (cls == "ViTMAEForPreTraining")
    same_numbers(hf, from_file.model, images(), decoder=held.config.has_decoder)


def test_transformers_vit_object_equals_its_folder_and_transformers(tmp_path):
    hf = hf_small("ViTModel")
    hf.save_pretrained(tmp_path / "vit")
    held = load_checkpoint(hf)
    assert any("pooler" in note for note in held.notes)
    same_numbers(hf, load_checkpoint(tmp_path / "vit").model, images(), decoder=False)
    x = images(2).tensors[0]
    with torch.no_grad():
        want = hf(pixel_values=x).last_hidden_state
        got = held.model.encode(x, 0.0).tokens
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
