"""SimCLR through the shared trainer and CLI: ``maelens train --method simclr`` for one epoch with resume,
the checkpoint loaded back (weights only), ``info``, ``features`` (512-d backbone), MAE-only commands refusing
it, and the ``method`` field of TrainConfig (old configs read as MAE)."""

import json

import numpy as np
import pytest
import torch

from maelens import load_checkpoint, load_model
from maelens.cli import main
from maelens.errors import ConfigError
from maelens.models.simclr import SimCLR
from maelens.train import TrainConfig
from maelens.train.distributed import DistInfo
from maelens.train.methods import get_method
from maelens.train.reuse import _differences


@pytest.fixture
def npz(tmp_path):
    """24 colour images, 16 for training and 8 held out, four classes."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)
    path = tmp_path / "images.npz"
    np.savez(path, images=images, labels=np.arange(24) % 4, split=np.array(["train"] * 16 + ["test"] * 8))
    return path


def test_method_field_and_its_checks():
    assert TrainConfig().method == "mae"
    assert TrainConfig.from_dict({"preset": "tiny", "epochs": 3}).method == "mae"  # stored before the field
    assert _differences({"preset": "tiny", "decay_tokens": True}, TrainConfig()) == []  # no method: an MAE run
    with pytest.raises(ConfigError, match="set method=simclr"):
        TrainConfig(preset="simclr-r18")
    with pytest.raises(ConfigError, match="trains a SimCLR preset"):
        TrainConfig(method="simclr", preset="tiny")
    with pytest.raises(ConfigError, match="MAE reconstruction settings"):
        TrainConfig(method="simclr", preset="simclr-r18", norm_pix_loss=True)
    config = TrainConfig(method="simclr", preset="simclr-r18", model_overrides={"img_size": 32, "stem": "cifar"})
    assert config.model_config().stem == "cifar" and config.image_size == 32


def test_the_simclr_batch_is_two_normalised_views_of_each_image():
    method = get_method("simclr")
    config = TrainConfig(method="simclr", preset="simclr-r18", model_overrides={"img_size": 16})
    model_config = config.model_config()
    mean = torch.tensor(model_config.norm_mean).view(1, 3, 1, 1)
    std = torch.tensor(model_config.norm_std).view(1, 3, 1, 1)
    pixels = torch.rand(4, 3, 16, 16)
    views = method.inputs((pixels - mean) / std, model_config, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert views.shape == (8, 3, 16, 16)
    back = views * std + mean
    assert back.min() >= -1e-5 and back.max() <= 1 + 1e-5
    assert not torch.allclose(views[:4], views[4:])  # two independent draws
    info = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    model = method.build_model(model_config, config, info)
    loss = method.loss(model, views, config, torch.Generator(), info)
    assert loss.ndim == 0 and torch.isfinite(loss)


def run_train(npz, out, *extra):
    return main(["train", "--method", "simclr", "--data", str(npz), "--batch-size", "8", "--warmup-epochs", "0",
                 "--blr", "1e-3", "--out", str(out), "--device", "cpu", "--quiet", *extra])


def test_train_resume_load_info_features_and_refusals(npz, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_train(npz, out, "--epochs", "1", "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "completed" and summary["trainable_parameters"] == 11_504_832
    assert summary["train_config"]["method"] == "simclr" and summary["model"]["name"] == "simclr-r18"
    assert summary["steps_per_epoch"] == 2 and np.isfinite(summary["final_loss"])
    assert not list(out.glob("recon_epoch_*.png"))  # no reconstruction figure for SimCLR
    assert (out / "log.csv").read_text().count("\n") == 1 + 2 + 1  # header, 2 steps, 1 epoch

    # resume for a second epoch: the first epoch's record is kept, the run continues from the checkpoint
    assert run_train(npz, out, "--epochs", "2", "--resume", "auto", "--json") == 0
    resumed = json.loads(capsys.readouterr().out)
    assert resumed["resumed_from"] == str(out / "checkpoint.pt") and resumed["epochs_completed"] == 2
    assert resumed["history"][0] == summary["history"][0]

    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt.method == "simclr" and ckpt.epoch == 1 and ckpt.release == "training"
    assert isinstance(ckpt.model, SimCLR) and not ckpt.model.training
    assert isinstance(load_model(out / "checkpoint.pt"), SimCLR)
    raw = torch.load(out / "checkpoint.pt", weights_only=True)
    assert raw["config"]["method"] == "simclr"

    assert main(["info", "--ckpt", str(out / "checkpoint.pt"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["method"] == "simclr" and info["backbone_parameters"] == 11_176_512
    assert info["projection_parameters"] == 328_320 and info["feature_dim"] == 512
    assert main(["info", "--ckpt", str(out / "checkpoint.pt")]) == 0
    assert "NT-Xent, temperature 0.5" in capsys.readouterr().out

    feats = tmp_path / "feats.npz"
    assert main(["features", "--ckpt", str(out / "checkpoint.pt"), "--data", str(npz), "--split", "train",
                 "--out", str(feats), "--quiet"]) == 0
    with np.load(feats) as data:
        assert data["features"].shape == (16, 512) and np.isfinite(data["features"]).all()
    expected = ckpt.model.features(torch.stack([ckpt_image for ckpt_image, _ in _images(npz, ckpt)]))
    with np.load(feats) as data:
        np.testing.assert_allclose(data["features"], expected.detach().numpy(), rtol=1e-4, atol=1e-5)

    capsys.readouterr()
    assert main(["reconstruct", "--ckpt", str(out / "checkpoint.pt"), "--data", str(npz),
                 "--out", str(tmp_path / "fig.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds a SimCLR model" in err and "needs an MAE" in err
    assert not (tmp_path / "fig.png").exists()
    assert main(["features", "--ckpt", str(out / "checkpoint.pt"), "--data", str(npz), "--pool", "cls",
                 "--out", str(tmp_path / "f2.npz")]) == 2
    assert "SimCLR" in capsys.readouterr().err


def _images(npz, ckpt):
    from maelens.data import load_dataset

    c = ckpt.config
    return load_dataset(str(npz), image_size=c.img_size, split="train", mean=c.norm_mean, std=c.norm_std)


def test_simclr_options_need_the_method(npz, tmp_path, capsys):
    assert main(["train", "--data", str(npz), "--temperature", "0.2", "--out", str(tmp_path / "x")]) == 2
    assert "--method simclr" in capsys.readouterr().err
    assert main(["train", "--preset", "simclr-r18", "--method", "mae", "--data", str(npz),
                 "--out", str(tmp_path / "y")]) == 2
    assert "SimCLR model" in capsys.readouterr().err
