"""The training loop on the tiny preset and tens of images: accumulation, outputs, NaN stop, resume."""

import json

import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

from maelens import create_model, load_checkpoint
from maelens.errors import CheckpointError, ConfigError, DataError
from maelens.plots.reconstruction import epoch_reconstruction
from maelens.train import DivergenceError, TrainConfig, lr_at, train
from maelens.train.loop import accumulate
from maelens.train.runlog import read_log


def random_images(n=32, size=32, seed=0):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed)).clamp(-2, 2)


def tensor_data(n=32):
    return TensorDataset(random_images(n), torch.arange(n) % 4)


class Scripted(Dataset):
    """Images of :func:`random_images`; after ``after`` item reads, images of 1e30 (finite, but the loss
    overflows: a divergence, not bad data), NaN images (bad data) or an interruption."""

    def __init__(self, n=32, after=None, failure="huge"):
        self.x = random_images(n)
        self.after, self.failure, self.reads = after, failure, 0

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        self.reads += 1
        if self.after is not None and self.reads > self.after:
            if self.failure == "interrupt":
                raise KeyboardInterrupt
            return torch.full_like(self.x[i], 1e30 if self.failure == "huge" else float("nan")), 0
        return self.x[i], 0


def config(tmp_path, name="run", **kw):
    base = dict(preset="tiny", epochs=2, batch_size=8, warmup_epochs=1, blr=1e-2, quiet=True,
                out=str(tmp_path / name), recon_images=0)
    return TrainConfig(**{**base, **kw})


def test_accumulated_gradients_equal_the_big_batch_gradients():
    # grid masking removes the same number of patches per image, so mean(loss_a, loss_b) == loss_ab
    x = random_images(8)
    grads = []
    for chunks in ([x], [x[:4], x[4:]], [x[:2], x[2:4], x[4:6], x[6:]]):
        torch.manual_seed(0)
        model = create_model("tiny")
        loss = accumulate(lambda imgs, model=model: model(imgs, 0.75, masking="grid")[0], chunks)
        grads.append((loss, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (loss8, g8), (loss4, g4), (loss2, g2) = grads
    assert loss4.item() == pytest.approx(loss8.item(), rel=1e-5) == pytest.approx(loss2.item(), rel=1e-5)
    assert g8.keys() == g4.keys() == g2.keys()
    for name in g8:
        torch.testing.assert_close(g4[name], g8[name], rtol=1e-4, atol=1e-6, msg=name)
        torch.testing.assert_close(g2[name], g8[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("loss", ["pixel", "norm-pix", "ycbcr"])
def test_each_loss_trains_and_writes_every_output(tmp_path, loss):
    options = {"pixel": {}, "norm-pix": {"norm_pix_loss": True}, "ycbcr": {"loss_target": "ycbcr"}}[loss]
    cfg = config(tmp_path, masking="grid", recon_images=3, **options)
    result = train(cfg, dataset=tensor_data(), on_epoch_end=epoch_reconstruction)
    out = tmp_path / "run"
    assert result.checkpoint == out / "checkpoint.pt"
    assert [r["epoch"] for r in result.history] == [0, 1]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in result.history)
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt.epoch == 1 and ckpt.train_config == cfg.to_dict()
    assert ckpt.config.norm_pix_loss == (loss == "norm-pix")
    assert ckpt.config.loss_target == ("ycbcr" if loss == "ycbcr" else "pixel")
    assert ckpt.raw["optimizer"]["state"]
    for a, b in zip(ckpt.model.parameters(), result.model.parameters()):
        assert torch.equal(a, b)
    for name in ("recon_epoch_000.png", "recon_epoch_001.png", "log.csv", "log.jsonl", "summary.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 2
    assert summary["final_loss"] == pytest.approx(result.final_loss)


def test_logs_hold_each_step_with_the_scheduled_lr(tmp_path):
    cfg = config(tmp_path, epochs=3, warmup_epochs=1, schedule="linear", accum_iter=2, batch_size=4)
    train(cfg, dataset=tensor_data())
    records = read_log(tmp_path / "run" / "log.jsonl")
    steps = [r for r in records if r["kind"] == "step"]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert len(steps) == 12 and [r["step"] for r in steps] == list(range(1, 13))  # 32 / (4 x 2) per epoch
    assert [r["epoch"] for r in epochs] == [0, 1, 2]
    peak = 1e-2 * 8 / 256
    for r in steps:
        e = r["epoch"] + ((r["step"] - 1) % 4) / 4
        assert r["lr"] == pytest.approx(lr_at(e, peak_lr=peak, epochs=3, warmup_epochs=1, schedule="linear"))
        assert r["images_per_s"] > 0
    header = (tmp_path / "run" / "log.csv").read_text().splitlines()[0]
    assert header == "kind,epoch,step,loss,lr,images_per_s,time_s"
    assert len((tmp_path / "run" / "log.csv").read_text().splitlines()) == 1 + 12 + 3


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    data = Scripted(after=32)  # epoch 0 reads the 32 good images; in epoch 1 the loss overflows
    with pytest.raises(DivergenceError, match="epoch 1.*checkpoint.pt"):
        train(config(tmp_path, epochs=3), dataset=data)
    out = tmp_path / "run"
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt.epoch == 0
    assert all(torch.isfinite(p).all() for p in ckpt.model.state_dict().values())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "diverged" and ("nan" in summary["message"] or "inf" in summary["message"])


def test_nan_images_met_in_training_are_bad_data_not_a_divergence(tmp_path):
    with pytest.raises(DataError, match="32 of 32 images with NaN or infinite values"):
        train(config(tmp_path, epochs=3), dataset=Scripted(after=32, failure="nan"))


def test_resume_after_a_crash_continues_exactly(tmp_path):
    # uninterrupted 3 epochs vs. a run that dies inside epoch 1, then resumed from its epoch-0 checkpoint
    full = train(config(tmp_path, "full", epochs=3, masking="random"), dataset=Scripted())
    with pytest.raises(KeyboardInterrupt):
        train(config(tmp_path, "crash", epochs=3, masking="random"), dataset=Scripted(after=48, failure="interrupt"))
    assert load_checkpoint(tmp_path / "crash" / "checkpoint.pt").epoch == 0
    resumed = train(config(tmp_path, "crash", epochs=3, masking="random", resume="auto"), dataset=Scripted())
    assert resumed.summary["resumed_from"] == str(tmp_path / "crash" / "checkpoint.pt")
    assert [r["loss"] for r in resumed.history] == pytest.approx([r["loss"] for r in full.history], rel=1e-6)

    def curve(name):
        records = [r for r in read_log(tmp_path / name / "log.jsonl") if r["kind"] != "start"]
        return [(r["kind"], r["epoch"], r["step"]) for r in records], [v for r in records for v in (r["loss"], r["lr"])]

    (keys, values), (full_keys, full_values) = curve("crash"), curve("full")
    assert keys == full_keys  # the interrupted epoch's partial steps were dropped on resume
    assert values == pytest.approx(full_values, rel=1e-6)
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_numbered_checkpoints_keep_the_last_k(tmp_path):
    train(config(tmp_path, epochs=3, keep_last=2), dataset=tensor_data(16))
    out = tmp_path / "run"
    assert sorted(p.name for p in out.glob("checkpoint*.pt")) == ["checkpoint-0001.pt", "checkpoint-0002.pt",
                                                                 "checkpoint.pt"]
    assert load_checkpoint(out / "checkpoint-0001.pt").epoch == 1


def test_resume_of_a_finished_run_trains_nothing_more(tmp_path):
    first = train(config(tmp_path, epochs=1), dataset=tensor_data(16))
    again = train(config(tmp_path, epochs=1, resume="auto"), dataset=tensor_data(16))
    assert again.history == first.history
    for a, b in zip(first.model.parameters(), again.model.parameters()):
        assert torch.equal(a, b)


def test_user_errors_are_config_errors(tmp_path):
    train(config(tmp_path, epochs=1), dataset=tensor_data(16))
    with pytest.raises(ConfigError, match="already exists"):
        train(config(tmp_path, epochs=1), dataset=tensor_data(16))
    with pytest.raises(ConfigError, match="no full optimizer step"):
        train(config(tmp_path, "small", batch_size=64), dataset=tensor_data(16))
    with pytest.raises(CheckpointError, match="differs"):
        train(config(tmp_path, epochs=2, resume="auto", preset="kth-small"), dataset=tensor_data(16))


def test_bf16_autocast_and_attention_choice(tmp_path):
    result = train(config(tmp_path, epochs=1, precision="bf16", fused_attention=True), dataset=tensor_data(16))
    assert result.summary["precision"]["precision"] == "bf16"
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in result.history)
    assert all(blk.attn.fused_attn for blk in result.model.blocks)
    default = train(config(tmp_path, "cpu-default", epochs=1), dataset=tensor_data(16))
    assert not any(blk.attn.fused_attn for blk in default.model.blocks)  # eager is faster on CPU


def test_the_trainer_draws_nothing_itself_and_reports_each_epoch(tmp_path):
    """Issue 17: figures are the caller's; on_epoch_end gets every epoch with the fixed figure batch."""
    events = []
    cfg = config(tmp_path, masking="grid", recon_images=3)
    result = train(cfg, dataset=tensor_data(), on_epoch_end=events.append)
    assert not list((tmp_path / "run").glob("recon_epoch_*.png"))
    assert [e.epoch for e in events] == [0, 1]
    assert [e.loss for e in events] == [r["loss"] for r in result.history]
    assert events[0].images.shape[0] == 3 and torch.equal(events[0].images, events[1].images)
    assert torch.equal(events[0].noise, events[1].noise) and events[0].out_dir == tmp_path / "run"
