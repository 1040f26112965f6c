"""Training a CAE with the shared trainer (``method="cae"``, ``maelens train --method cae``): exact resume, bf16,
the NaN stop, the checkpoint loader and ``maelens info``."""

import json

import pytest
import torch
from test_train_loop import Scripted

from maelens import load_checkpoint, load_model
from maelens.cli import main
from maelens.errors import ConfigError
from maelens.models.cae import ContextAutoencoder
from maelens.train import DivergenceError, TrainConfig, train
from maelens.train.cae_method import cae_train_config


def config(tmp_path, name="run", **kw):
    base = dict(epochs=2, batch_size=8, warmup_epochs=1, blr=1e-2, quiet=True, out=str(tmp_path / name))
    return cae_train_config(**{**base, **kw})


def test_cae_defaults_and_method_checks():
    c = cae_train_config()
    assert (c.method, c.preset, c.masking, c.mask_ratio) == ("cae", "cae-tiny", "block", 0.5)
    with pytest.raises(ConfigError, match="CAE preset"):
        TrainConfig(method="cae", preset="tiny")
    with pytest.raises(ConfigError, match="CAE preset"):
        TrainConfig(preset="cae-tiny")  # method mae
    with pytest.raises(ConfigError, match="loss_target"):
        cae_train_config(loss_target="ycbcr")


def test_resume_after_a_crash_continues_exactly(tmp_path):
    full = train(config(tmp_path, "full", epochs=3), dataset=Scripted())
    with pytest.raises(KeyboardInterrupt):
        train(config(tmp_path, "crash", epochs=3), dataset=Scripted(after=48, failure="interrupt"))
    assert load_checkpoint(tmp_path / "crash" / "checkpoint.pt").epoch == 0
    resumed = train(config(tmp_path, "crash", epochs=3, resume="auto"), dataset=Scripted())
    assert [r["loss"] for r in resumed.history] == pytest.approx([r["loss"] for r in full.history], rel=1e-6)
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_bf16_and_the_nan_stop(tmp_path):
    result = train(config(tmp_path, "bf16", epochs=1, precision="bf16"), dataset=Scripted(16))
    assert result.summary["precision"]["precision"] == "bf16"
    assert torch.isfinite(torch.tensor(result.final_loss))
    with pytest.raises(DivergenceError, match="became"):
        train(config(tmp_path, "nan", epochs=2), dataset=Scripted(16, after=16, failure="huge"))
    assert json.loads((tmp_path / "nan" / "summary.json").read_text())["status"] == "diverged"


def test_cli_train_info_and_load_model(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["train", "--method", "cae", "--cae-target", "hog", "--epochs", "1", "--num-images", "16",
                 "--batch-size", "8", "--out", str(out), "--quiet", "--device", "cpu", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["train_config"]["masking"] == "block" and summary["train_config"]["mask_ratio"] == 0.5
    assert summary["model"]["target"] == "hog" and summary["model"]["method"] == "cae"
    model = load_model(out / "checkpoint.pt")
    assert isinstance(model, ContextAutoencoder) and model.config.target == "hog" and not model.training
    assert main(["info", "--ckpt", str(out / "checkpoint.pt"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["method"] == "cae" and info["parameter_counts"]["encoder"] == 103_744
    assert info["parameter_counts"]["total"] == info["trainable_parameters"]
    assert main(["info", "--ckpt", str(out / "checkpoint.pt")]) == 0
    text = capsys.readouterr().out
    assert "regressor" in text and "HOG (MaskFeat) reconstruction + 2 x alignment" in text


@pytest.mark.parametrize("args,message", [
    (["--cae-target", "hog"], "CAE options: add --method cae"),
    (["--method", "cae", "--loss", "ycbcr"], "loss_target is an MAE setting"),
    (["--method", "cae", "--preset", "tiny"], "CAE preset"),
    (["--method", "cae", "--cae-target", "hog", "--loss", "norm-pix"], "norm_pix_loss applies to the pixel target"),
])
def test_cli_refusals_are_one_line(tmp_path, capsys, args, message):
    assert main(["train", *args, "--epochs", "1", "--num-images", "8", "--out", str(tmp_path / "x"), "--quiet",
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and err.startswith("maelens train: error:")


def test_the_loader_refuses_mae_options_and_a_mismatched_file(tmp_path):
    from maelens.checkpoint import save_checkpoint
    from maelens.errors import CheckpointError
    from maelens.models.cae import create_cae

    path = save_checkpoint(tmp_path / "c.pt", create_cae("cae-tiny"))
    with pytest.raises(ConfigError, match="is a CAE .* --num-heads"):
        load_checkpoint(path, num_heads=2)
    # a larger input: the fixed sin-cos table is regenerated
    assert load_checkpoint(path, image_size=48).model.pos_embed.shape == (1, 145, 64)
    payload = torch.load(path, weights_only=True)
    payload["model"].pop("mask_query")
    torch.save(payload, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match="does not fit its cae-tiny CAE: it lacks mask_query"):
        load_checkpoint(tmp_path / "broken.pt")


DDP_WORKER = '''
import os, sys, torch
from torch.utils.data import TensorDataset
from maelens.train import train
from maelens.train.cae_method import cae_train_config

torch.set_num_threads(1)
out = sys.argv[1]
x = torch.randn(32, 3, 32, 32, generator=torch.Generator().manual_seed(0))
config = cae_train_config(epochs=1, batch_size=4, warmup_epochs=0, precision="fp32", blr=1e-2, device="cpu", out=out,
                          quiet=True)
result = train(config, dataset=TensorDataset(x, torch.zeros(32, dtype=torch.long)))
torch.save(result.model.state_dict(), os.path.join(out, "weights-rank%s.pt" % os.environ["RANK"]))
'''


def test_two_gloo_processes_train_one_cae(tmp_path):
    from torchrun_helper import run_two_processes

    out = tmp_path / "ddp"
    proc = run_two_processes(DDP_WORKER, tmp_path, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0 = torch.load(out / "weights-rank0.pt", weights_only=True)
    rank1 = torch.load(out / "weights-rank1.pt", weights_only=True)
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["status"] == "completed"
    assert isinstance(load_model(out / "checkpoint.pt"), ContextAutoencoder)
