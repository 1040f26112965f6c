"""Mixed precision (issue 12): ``auto`` resolves to bf16 only where the device computes it natively;
the loss and targets stay float32 under autocast; the choice is logged and recorded."""

import json

import pytest
import torch
from torch.utils.data import TensorDataset

from maelens import create_model
from maelens.errors import ConfigError
from maelens.train import TrainConfig, train
from maelens.train import precision as precision_mod
from maelens.train.precision import cpu_bf16_flags, resolve_precision, usable_cpu_threads
from maelens.train.reuse import _differences
from maelens.train.runlog import read_log


def _cpuinfo(tmp_path, flags):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 {flags}\n\n")
    return path


def _no_torch_probes(monkeypatch):
    monkeypatch.setattr(torch._C, "_cpu", None, raising=False)


def test_cpu_flags_read_from_cpuinfo(tmp_path, monkeypatch):
    _no_torch_probes(monkeypatch)
    assert cpu_bf16_flags(_cpuinfo(tmp_path, "avx2 avx512f avx512_bf16")) == ["avx512_bf16"]
    assert cpu_bf16_flags(_cpuinfo(tmp_path, "avx2 amx_tile amx_bf16")) == ["amx_bf16"]
    assert cpu_bf16_flags(_cpuinfo(tmp_path, "avx2 avx512f")) == []
    assert cpu_bf16_flags(tmp_path / "missing") == []


def test_auto_follows_the_cpu(monkeypatch):
    monkeypatch.setattr(precision_mod, "cpu_bf16_flags", lambda: ["avx512_bf16"])
    chosen = resolve_precision("auto", "cpu")
    assert chosen.name == "bf16" and "avx512_bf16" in chosen.reason
    monkeypatch.setattr(precision_mod, "cpu_bf16_flags", lambda: [])
    chosen = resolve_precision("auto", "cpu")
    assert chosen.name == "fp32" and "emulated" in chosen.reason
    # an explicit request is honoured whatever the hardware
    assert resolve_precision("bf16", "cpu").name == "bf16"
    assert resolve_precision("fp32", "cpu").name == "fp32"
    with pytest.raises(ValueError):
        resolve_precision("fp16", "cpu")


def test_config_validates_and_reads_old_bf16_flag():
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="half")
    assert TrainConfig.from_dict({"bf16": True}).precision == "bf16"
    assert TrainConfig.from_dict({"bf16": False}).precision == "fp32"
    assert TrainConfig.from_dict({"precision": "fp32", "bf16": True}).precision == "fp32"
    # a run stored before issue 12 with bf16=True counts as precision="bf16" for train_or_load
    stored = {k: v for k, v in TrainConfig(precision="bf16").to_dict().items() if k != "precision"}
    stored["bf16"] = True
    assert _differences(json.loads(json.dumps(stored)), TrainConfig(precision="bf16")) == []
    assert _differences(json.loads(json.dumps(stored)), TrainConfig(precision="fp32")) == ["precision"]


@pytest.mark.parametrize("loss", ["pixel", "ycbcr"])
def test_loss_is_float32_under_bf16_autocast(loss):
    model = create_model("tiny", loss_target=loss, norm_pix_loss=loss == "pixel")
    imgs = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    noise = torch.rand(4, model.num_patches, generator=torch.Generator().manual_seed(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss_bf16, pred, mask = model(imgs, 0.75, noise)
        assert pred.dtype == torch.bfloat16  # the network ran in bf16...
    assert loss_bf16.dtype == torch.float32  # ...the loss did not
    # the same loss computed by hand in float32 from the bf16 prediction
    assert torch.allclose(loss_bf16, model.forward_loss(imgs, pred.float(), mask), rtol=0, atol=0)
    fp32_loss, _, _ = model(imgs, 0.75, noise)
    assert abs(loss_bf16.item() - fp32_loss.item()) / fp32_loss.item() < 0.05


def test_run_logs_and_records_the_choice(tmp_path):
    data = TensorDataset(torch.randn(16, 3, 32, 32), torch.zeros(16))
    result = train(TrainConfig(preset="tiny", epochs=1, batch_size=8, warmup_epochs=0, precision="fp32",
                               recon_images=0, quiet=True, out=str(tmp_path / "run")), dataset=data)
    assert result.summary["precision"] == {"precision": "fp32", "requested": "fp32",
                                           "reason": "float32 requested"}
    assert result.summary["train_config"]["precision"] == "fp32"
    start = read_log(tmp_path / "run" / "log.jsonl")[0]
    assert start["kind"] == "start" and start["precision"] == "fp32"
    assert start["threads"] == torch.get_num_threads()


def test_threads_follow_affinity(monkeypatch):
    monkeypatch.setattr(precision_mod.os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert usable_cpu_threads() == 3


@pytest.mark.parametrize("precision, fused_attention, device, expected", [
    ("fp32", None, "cpu", True),     # fused is the faster fp32 CPU step (benchmarks/attention_kernel.py)
    ("bf16", None, "cpu", False),    # ...and 3x slower under CPU bf16 autocast: eager
    ("bf16", True, "cpu", True),     # a given choice is used as given
    ("fp32", False, "cpu", False),
    ("bf16", None, "cuda", True),    # CUDA: fused whatever the precision
])
def test_attention_kernel_follows_the_precision(precision, fused_attention, device, expected):
    from maelens.train.methods import use_fused_attention

    config = TrainConfig(preset="tiny", precision=precision, fused_attention=fused_attention)
    assert use_fused_attention(config, torch.device(device)) is expected


def test_auto_precision_picks_the_kernel_of_the_resolved_precision(monkeypatch):
    from maelens.train.methods import use_fused_attention

    config = TrainConfig(preset="tiny", precision="auto")
    monkeypatch.setattr(precision_mod, "cpu_bf16_flags", lambda: ["avx512_bf16"])
    assert use_fused_attention(config, torch.device("cpu")) is False
    monkeypatch.setattr(precision_mod, "cpu_bf16_flags", lambda: [])
    assert use_fused_attention(config, torch.device("cpu")) is True


def test_trained_model_carries_the_chosen_kernel(tmp_path):
    data = TensorDataset(torch.randn(8, 3, 32, 32), torch.zeros(8))
    result = train(TrainConfig(preset="tiny", epochs=1, batch_size=8, warmup_epochs=0, precision="fp32",
                               recon_images=0, quiet=True, out=str(tmp_path / "run")), dataset=data)
    kernels = {m.fused_attn for m in result.model.modules() if hasattr(m, "fused_attn") and hasattr(m, "qkv")}
    assert kernels == {True}
