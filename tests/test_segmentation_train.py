"""Fine-tuning a segmenter end to end on the offline mosaic set: outputs, resume after a kill, NaN stop."""

import csv
import json

import pytest
import torch
from torch.utils.data import Dataset

from maelens import create_model
from maelens.checkpoint import save_checkpoint
from maelens.data.segmentation import load_segmentation
from maelens.errors import ConfigError
from maelens.plots.segmentation import epoch_figures
from maelens.segmentation import SegmentConfig, finetune, load_segmenter
from maelens.train import DivergenceError
from maelens.train.runlog import read_log


@pytest.fixture(scope="module")
def mosaics():
    return (load_segmentation("mosaic", image_size=32, split="train", train=True, limit=64),
            load_segmentation("mosaic", image_size=32, split="test", limit=32))


class Scripted(Dataset):
    """A segmentation set whose reads, after ``after`` of them, raise KeyboardInterrupt or give NaN images."""

    def __init__(self, base, after=None, failure="interrupt"):
        self.base, self.after, self.failure, self.reads = base, after, failure, 0
        self.num_classes, self.classes = base.num_classes, base.classes

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        self.reads += 1
        x, m = self.base[i]
        if self.after is not None and self.reads > self.after:
            if self.failure == "interrupt":
                raise KeyboardInterrupt
            x = torch.full_like(x, float("nan"))
        return x, m


def config(tmp_path, name="run", **kw):
    base = dict(preset="tiny", epochs=2, batch_size=16, lr=1e-3, warmup_epochs=1, quiet=True, device="cpu",
                out=str(tmp_path / name), figure_images=2, precision="fp32")
    return SegmentConfig(**{**base, **kw})


def test_two_epochs_end_to_end_on_the_offline_set(tmp_path):
    # the real path: data loaded from the spec, encoder from an MAE checkpoint, mask-transformer decoder
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "mae.pt", create_model("tiny"))
    cfg = config(tmp_path, init=str(tmp_path / "mae.pt"), decoder="mask", num_images=64, eval_images=32,
                 layer_decay=0.75)
    result = finetune(cfg, on_epoch_end=epoch_figures)
    out = tmp_path / "run"
    for name in ("checkpoint.pt", "log.csv", "log.jsonl", "metrics.json", "summary.json", "predictions.png",
                 "curves.png"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert list(rows[0])[:5] == ["epoch", "train_loss", "eval_loss", "pixel_accuracy", "miou"]
    for r in rows:
        assert 0 <= float(r["pixel_accuracy"]) <= 1 and 0 <= float(r["miou"]) <= 1 and float(r["eval_loss"]) > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epoch"] == 1 and len(metrics["iou"]) == 13 and len(metrics["classes"]) == 13
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["init"] == str(tmp_path / "mae.pt")
    assert summary["data"]["mosaic"]["seed"] > 0 and summary["train_images"] == 64
    loaded = load_segmenter(out / "checkpoint.pt")
    assert loaded.epoch == 1 and loaded.model.decoder_kind == "mask"
    for a, b in zip(loaded.model.parameters(), result.model.parameters()):
        assert torch.equal(a, b)


def test_resume_after_a_kill_gives_the_same_log(tmp_path, mosaics):
    train, test = mosaics
    full = finetune(config(tmp_path, "full", epochs=3), train_data=Scripted(train), eval_data=test)
    with pytest.raises(KeyboardInterrupt):  # dies inside epoch 1 (64 reads per epoch)
        finetune(config(tmp_path, "crash", epochs=3), train_data=Scripted(train, after=64 + 40), eval_data=test)
    assert load_segmenter(tmp_path / "crash" / "checkpoint.pt").epoch == 0
    resumed = finetune(config(tmp_path, "crash", epochs=3, resume="auto"), train_data=Scripted(train), eval_data=test)
    assert resumed.summary["resumed_from"] == str(tmp_path / "crash" / "checkpoint.pt")

    def records(name):
        return [{k: r[k] for k in ("kind", "epoch", "step", "loss", "train_loss", "eval_loss", "pixel_accuracy",
                                   "miou", "lr") if k in r}
                for r in read_log(tmp_path / name / "log.jsonl") if r["kind"] != "start"]

    got, want = records("crash"), records("full")
    assert [(r["kind"], r["epoch"], r["step"]) for r in got] == [(r["kind"], r["epoch"], r["step"]) for r in want]
    assert [v for r in got for k, v in r.items() if k != "kind"] == pytest.approx(
        [v for r in want for k, v in r.items() if k != "kind"], rel=1e-6)
    csv_rows = [(r["epoch"], r["miou"]) for r in csv.DictReader((tmp_path / "crash" / "log.csv").open())]
    assert [e for e, _ in csv_rows] == ["0", "1", "2"]
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, mosaics):
    train, test = mosaics
    with pytest.raises(DivergenceError, match="epoch 1"):
        finetune(config(tmp_path, epochs=3), train_data=Scripted(train, after=64, failure="nan"), eval_data=test)
    assert load_segmenter(tmp_path / "run" / "checkpoint.pt").epoch == 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "diverged"


def test_user_errors(tmp_path, mosaics):
    train, test = mosaics
    finetune(config(tmp_path, epochs=1, figure_images=0), train_data=train, eval_data=test)
    with pytest.raises(ConfigError, match="already exists"):
        finetune(config(tmp_path, epochs=1), train_data=train, eval_data=test)
    with pytest.raises(ConfigError, match="no full batch"):
        finetune(config(tmp_path, "big", batch_size=128), train_data=train, eval_data=test)
    with pytest.raises(ConfigError, match="decoder"):
        config(tmp_path, decoder="conv")
