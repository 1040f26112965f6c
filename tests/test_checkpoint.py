"""maelens checkpoints: round trip with optimizer/scheduler state, weights-only loadability,
RNG state capture, safe refusal of malicious pickles, and one-line errors."""

import os
import pickle
import random
import zipfile

import numpy as np
import pytest
import torch

from maelens import create_model
from maelens.checkpoint import (
    capture_rng_state,
    detect_format,
    load_checkpoint,
    load_model,
    restore_rng_state,
    save_checkpoint,
)
from maelens.errors import CheckpointError, ConfigError


def scrambled(model):
    """Perturb every trainable tensor so that a mis-mapped key changes the outputs."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model.eval()


def outputs(model, size=32, batch=2):
    g = torch.Generator().manual_seed(0)
    imgs = torch.randn(batch, 3, size, size, generator=g)
    noise = torch.rand(batch, model.num_patches, generator=g)
    with torch.no_grad():
        return model(imgs, mask_ratio=0.75, noise=noise)


def assert_same_outputs(a, b, size=32):
    for x, y in zip(outputs(a, size), outputs(b, size)):
        assert torch.equal(x, y)


class Evil:
    """Unpickling this would run a shell command: loading must refuse before that happens."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_round_trip_keeps_weights_optimizer_scheduler_and_epoch(tmp_path):
    model = create_model("tiny")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 ** step)
    for _ in range(2):
        loss, _, _ = model(torch.randn(4, 3, 32, 32), mask_ratio=0.75)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    path = save_checkpoint(tmp_path / "run" / "ckpt.pt", model, epoch=5, optimizer=opt, scheduler=sched,
                           train_config={"lr": np.float64(1e-3), "out": tmp_path, "sizes": (1, 2)},
                           extra={"curve": np.array([0.5, 0.25])})
    assert sorted(p.name for p in path.parent.iterdir()) == ["ckpt.pt"]  # no temporary left behind

    plain = torch.load(path, weights_only=True)  # no allow-list needed for maelens files
    assert plain["maelens_version"] and plain["config"]["name"] == "tiny"

    ckpt = load_checkpoint(path)
    assert ckpt.format == detect_format(path) == "maelens"
    assert ckpt.epoch == 5 and ckpt.config == model.config and not ckpt.model.training
    assert ckpt.train_config == {"lr": 1e-3, "out": str(tmp_path), "sizes": (1, 2)}
    assert type(ckpt.train_config["lr"]) is float
    assert torch.equal(ckpt.raw["extra"]["curve"], torch.tensor([0.5, 0.25], dtype=torch.float64))
    assert_same_outputs(model.eval(), ckpt.model)

    opt2 = torch.optim.AdamW(ckpt.model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    opt2.load_state_dict(ckpt.raw["optimizer"])
    for (_, s1), (_, s2) in zip(sorted(opt.state_dict()["state"].items()), sorted(opt2.state_dict()["state"].items())):
        assert all(torch.equal(s1[k], s2[k]) for k in ("exp_avg", "exp_avg_sq", "step"))
    sched2 = torch.optim.lr_scheduler.LambdaLR(opt2, lambda step: 0.5 ** step)
    sched2.load_state_dict(ckpt.raw["scheduler"])
    assert sched2.last_epoch == 2 and sched2.get_last_lr() == sched.get_last_lr()


def test_wrapped_models_are_saved_bare(tmp_path):
    model = scrambled(create_model("tiny"))
    save_checkpoint(tmp_path / "dp.pt", torch.nn.DataParallel(model))
    assert all(not k.startswith("module.") for k in torch.load(tmp_path / "dp.pt", weights_only=True)["model"])
    assert_same_outputs(model, load_model(tmp_path / "dp.pt"))


def test_save_refuses_values_weights_only_loading_cannot_read(tmp_path):
    model = create_model("tiny")
    with pytest.raises(ConfigError, match=r"extra\['bad'\] is a object"):
        save_checkpoint(tmp_path / "x.pt", model, extra={"bad": object()})
    assert not list(tmp_path.iterdir())
    with pytest.raises(ConfigError, match="MaskedAutoencoderViT"):
        save_checkpoint(tmp_path / "x.pt", torch.nn.Linear(2, 2))


def test_rng_state_restores_every_stream_and_survives_weights_only_loading(tmp_path):
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    np.random.standard_normal()  # leaves a cached Gaussian in numpy's legacy state
    state = capture_rng_state()
    first = (torch.rand(3), np.random.rand(3), np.random.standard_normal(), random.random(), random.gauss(0, 1))
    save_checkpoint(tmp_path / "r.pt", create_model("tiny"), extra={"rng": state})
    torch.rand(5), np.random.rand(5), random.random()
    restore_rng_state(load_checkpoint(tmp_path / "r.pt").raw["extra"]["rng"])
    again = (torch.rand(3), np.random.rand(3), np.random.standard_normal(), random.random(), random.gauss(0, 1))
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert first[2:] == again[2:]
    with pytest.raises(CheckpointError, match="RNG state"):
        restore_rng_state({"torch": torch.get_rng_state()})


@pytest.mark.parametrize("container", ["torch-zip", "raw-pickle"])
def test_malicious_pickle_is_refused_without_running(tmp_path, container):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pth"
    if container == "torch-zip":
        torch.save({"model": create_model("tiny").state_dict(), "args": Evil(marker)}, path)
    else:
        with path.open("wb") as f:
            pickle.dump({"epoch": 1, "args": Evil(marker)}, f, protocol=2)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert "refused for safety" in message and "system" in message and "\n" not in message
    assert not marker.exists()


def _error(path, **kwargs):
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, **kwargs)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_one_line_errors_for_missing_unreadable_and_unknown_files(tmp_path):
    assert "does not exist" in _error(tmp_path / "nope.pt")
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a checkpoint\n")
    assert "not a PyTorch checkpoint" in _error(text)
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("readme.txt", "hi")
    assert "not a PyTorch checkpoint" in _error(archive)
    empty = tmp_path / "empty.pt"
    empty.touch()
    assert "not a PyTorch checkpoint" in _error(empty)
    torch.save([1, 2, 3], tmp_path / "list.pt")
    assert "holds a list" in _error(tmp_path / "list.pt")
    torch.save({"foo": 1, "bar": [2], "baz": "x"}, tmp_path / "dict.pt")
    assert "unknown checkpoint format (keys seen: foo, bar, baz)" in _error(tmp_path / "dict.pt")
    torch.save({"weight": torch.zeros(2), "bias": torch.zeros(2)}, tmp_path / "linear.pt")
    assert "no ViT patch embedding" in _error(tmp_path / "linear.pt")
    (tmp_path / "empty_dir").mkdir()
    assert "no weight file" in _error(tmp_path / "empty_dir")


def test_shape_mismatch_and_missing_tensors_name_the_key(tmp_path):
    model = create_model("tiny")
    path = save_checkpoint(tmp_path / "a.pt", model)
    payload = torch.load(path, weights_only=True)
    payload["model"]["decoder_pred.weight"] = torch.zeros(12, 48)
    torch.save(payload, path)
    message = _error(path)
    assert "decoder_pred.weight" in message and "(12, 48)" in message and "(48, 48)" in message
    del payload["model"]["decoder_pred.weight"]
    torch.save(payload, path)
    assert "lacks tensor(s) decoder_pred.weight" in _error(path)
    payload["model"]["decoder_pred.weight"] = torch.zeros(48, 48)
    payload["model"]["blocks.0.ls1.gamma"] = torch.ones(64)
    torch.save(payload, path)
    assert "does not use: blocks.0.ls1.gamma" in _error(path)
    payload["config"]["embed_dim"] = 62
    torch.save(payload, path)
    assert "invalid model config" in _error(path)


def test_head_overrides_must_be_positive(tmp_path):
    path = save_checkpoint(tmp_path / "a.pt", create_model("tiny"))
    with pytest.raises(ConfigError, match="num_heads must be a positive integer"):
        load_checkpoint(path, num_heads=0)


def test_directories_resolve_to_the_run_checkpoint_or_their_only_weight_file(tmp_path):
    model = scrambled(create_model("tiny"))
    single = tmp_path / "single"
    save_checkpoint(single / "weights.pth", model, epoch=1)
    (single / "log.csv").write_text("epoch,loss\n")
    ckpt = load_checkpoint(single)
    assert ckpt.path == single and ckpt.epoch == 1
    assert_same_outputs(model, ckpt.model)
    run = tmp_path / "run"
    for epoch in (1, 2):
        save_checkpoint(run / f"checkpoint-{epoch:04d}.pt", model, epoch=epoch)
    assert "2 candidate files" in _error(run)
    save_checkpoint(run / "checkpoint.pt", model, epoch=3)
    assert load_checkpoint(run).epoch == 3
