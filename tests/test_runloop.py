"""The one run loop (maelens.train.runloop), by class of behaviour and for every task alike: the fine-tuning now
has what pretraining had (accum_iter, save_every, keep_last, the full-disk message); every run folder ends with a
summary.json saying how the run ended; a resumed run keeps its settings (or says what changed on purpose); a
contrastive run refuses a batch without negatives; per-step hooks see every optimizer step."""

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from fixtures.make_old_runs import MAE_OVERRIDES as SMALL
from fixtures.make_old_runs import Squares
from torch.utils.data import Dataset, TensorDataset

from maelens import create_model
from maelens.cli import main
from maelens.errors import CheckpointError, ConfigError, DataError
from maelens.segmentation import SegmentConfig, finetune, load_segmenter
from maelens.train import TrainConfig, train
from maelens.train.runlog import read_log
from maelens.train.runloop import RunLoop, run_task


def images(n=16):
    return TensorDataset(torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(0)))


class Failing(Dataset):
    """``base`` whose reads, after ``after`` of them, raise ``error``."""

    def __init__(self, base, after, error):
        self.base, self.after, self.error, self.reads = base, after, error, 0
        for name in ("num_classes", "classes"):
            if hasattr(base, name):
                setattr(self, name, getattr(base, name))

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        self.reads += 1
        if self.reads > self.after:
            raise self.error
        return self.base[i]


def run_mae(out, dataset=None, **kw):
    settings = dict(model_overrides=SMALL, epochs=2, batch_size=4, warmup_epochs=1, device="cpu", precision="fp32",
                    quiet=True, recon_images=0, out=str(out))
    return train(TrainConfig(**{**settings, **kw}), dataset=dataset if dataset is not None else images())


def run_segment(out, dataset=None, **kw):
    settings = dict(epochs=2, batch_size=4, warmup_epochs=1, device="cpu", precision="fp32", quiet=True,
                    figure_images=0, out=str(out))
    torch.manual_seed(0)
    encoder = create_model("tiny", **SMALL)
    return finetune(SegmentConfig(**{**settings, **kw}), train_data=dataset if dataset is not None else Squares(16, 1),
                    eval_data=Squares(8, 2), encoder=encoder)


TASKS = {"pretrain": (run_mae, images), "segment": (run_segment, lambda: Squares(16, 1))}


# ---- the fine-tuning gains what the loop gives every task --------------------------------------------------

def test_segmentation_accumulates_gradients_like_one_larger_batch(tmp_path):
    whole = run_segment(tmp_path / "whole", batch_size=8, epochs=1)
    accumulated = run_segment(tmp_path / "accum", batch_size=4, accum_iter=2, epochs=1)
    assert accumulated.summary["effective_batch_size"] == whole.summary["effective_batch_size"] == 8
    assert accumulated.summary["steps_per_epoch"] == whole.summary["steps_per_epoch"] == 2
    for a, b in zip(whole.model.parameters(), accumulated.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_segmentation_saves_every_n_epochs_and_keeps_the_last_k(tmp_path):
    run_segment(tmp_path / "run", epochs=5, save_every=2, keep_last=2)
    out = tmp_path / "run"
    assert sorted(p.name for p in out.glob("checkpoint-*.pt")) == ["checkpoint-0003.pt", "checkpoint-0004.pt"]
    assert load_segmenter(out / "checkpoint-0003.pt").epoch == 3  # epochs 1 and 3 saved, then the last (4)
    assert load_segmenter(out / "checkpoint.pt").epoch == 4


@pytest.mark.parametrize("task", sorted(TASKS))
def test_a_full_disk_at_a_checkpoint_keeps_the_previous_one_and_says_so(task, tmp_path, monkeypatch):
    run, _ = TASKS[task]
    saves = []
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        saves.append(f)
        if len(saves) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(CheckpointError, match="after epoch 1; the previous one is kept"):
        run(tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and "after epoch 1" in summary["message"]
    assert summary["epochs_completed"] == 2 and summary["checkpoint"].endswith("checkpoint.pt")


# ---- every run folder ends with a summary.json that says how the run ended ----------------------------------

@pytest.mark.parametrize("task", sorted(TASKS))
@pytest.mark.parametrize("error, status, why", [
    (KeyboardInterrupt(), "interrupted", "Ctrl-C"),
    (DataError("image 3 is unreadable"), "failed", "DataError: image 3 is unreadable"),
    (RuntimeError("a worker died\nwith more lines"), "failed", "RuntimeError: a worker died"),
])
def test_a_run_stopped_in_its_first_epoch_writes_why(task, error, status, why, tmp_path):
    run, data = TASKS[task]
    with pytest.raises(type(error)):
        run(tmp_path / "run", dataset=Failing(data(), after=6, error=error))
    out = tmp_path / "run"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == status and why in summary["message"] and "\n" not in summary["message"]
    assert summary["epochs_completed"] == 0 and summary["checkpoint"] is None
    assert [r["kind"] for r in read_log(out / "log.jsonl")][:1] == ["start"]  # the logs are kept beside it


def test_a_completed_run_says_so(tmp_path):
    result = run_mae(tmp_path / "run", epochs=1)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "completed"
    assert result.summary["status"] == "completed" and result.summary["message"] is None


SIGTERM_WORKER = textwrap.dedent('''
    import sys, time, torch
    from torch.utils.data import Dataset
    from maelens.train import TrainConfig, train

    class Slow(Dataset):
        def __len__(self):
            return 16
        def __getitem__(self, i):
            time.sleep(0.05)
            return torch.zeros(3, 8, 8)

    torch.set_num_threads(1)
    overrides = dict(img_size=8, patch_size=4, embed_dim=16, depth=1, num_heads=2, decoder_embed_dim=16,
                     decoder_depth=1, decoder_num_heads=2)
    train(TrainConfig(model_overrides=overrides, epochs=50, batch_size=4, device="cpu", quiet=True, recon_images=0,
                      out=sys.argv[1]), dataset=Slow())
''')


def test_a_terminated_run_writes_its_summary(tmp_path):
    script, out = tmp_path / "worker.py", tmp_path / "run"
    script.write_text(SIGTERM_WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(script), str(out)], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not any(r.get("kind") == "step" for r in read_log(out / "log.jsonl")):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the run never took a step"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    proc.stderr.close()
    assert proc.returncode != 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["message"] == "stopped by SIGTERM"


# ---- a resumed run keeps the stored run's settings ----------------------------------------------------------

@pytest.mark.parametrize("task, change, field", [
    ("pretrain", {"mask_ratio": 0.5}, "mask_ratio"),
    ("pretrain", {"data": "another"}, "data"),
    ("pretrain", {"epochs": 1}, "epochs"),
    ("segment", {"blr": 1e-2}, "blr"),
    ("segment", {"optimizer": "sgd", "seed": 3}, "optimizer"),
])
def test_resuming_with_other_settings_is_refused_naming_the_field(task, change, field, tmp_path):
    run, _ = TASKS[task]
    run(tmp_path / "run", epochs=2)
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    with pytest.raises(ConfigError, match=f"trained with .*{field}=.*this run: {field}="):
        run(tmp_path / "run", resume="auto", **{"epochs": 3, **change})
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before  # nothing was trained or written


@pytest.mark.parametrize("task", sorted(TASKS))
def test_settings_that_may_change_are_said_once_and_recorded(task, tmp_path):
    run, _ = TASKS[task]
    run(tmp_path / "run", epochs=1)
    said = []
    if task == "pretrain":
        result = train(TrainConfig(model_overrides=SMALL, epochs=3, batch_size=4, warmup_epochs=1, device="cpu",
                                   precision="fp32", quiet=True, recon_images=0, out=str(tmp_path / "run"),
                                   resume="auto"), dataset=images(), notify=said.append)
    else:
        result = run(tmp_path / "run", epochs=3, resume="auto")
    changed = ["resumed with epochs=3 where the stored run had epochs=1"]
    assert result.summary["changed"] == changed and len(result.history) == 3
    assert [r.get("changed") for r in read_log(tmp_path / "run" / "log.jsonl") if r["kind"] == "start"] == [
        None, changed]
    if task == "pretrain":
        assert said == changed


def npz_file(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "images.npz"
    np.savez(path, images=rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8), labels=np.arange(16) % 2)
    return path


def test_the_command_line_refuses_a_changed_resume_in_one_line(tmp_path, capsys):
    data = npz_file(tmp_path)
    base = ["train", "--data", str(data), "--batch-size", "8", "--out", str(tmp_path / "run"), "--device", "cpu",
            "--quiet", "--recon-images", "0"]
    assert main([*base, "--epochs", "1"]) == 0
    capsys.readouterr()
    assert main([*base, "--epochs", "2", "--resume", "auto", "--mask-ratio", "0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("maelens train: error: ")
    assert "mask_ratio=0.75 (this run: mask_ratio=0.5)" in err


# ---- contrastive training needs negatives -------------------------------------------------------------------

def test_simclr_refuses_a_global_batch_of_one(tmp_path, capsys):
    config = TrainConfig(method="simclr", preset="simclr-r18", model_overrides={"img_size": 8, "stem": "cifar"},
                         epochs=1, batch_size=1, device="cpu", quiet=True, out=str(tmp_path / "run"))
    with pytest.raises(ConfigError, match="needs at least 2 images per batch over all processes"):
        train(config, dataset=images(4))
    assert not (tmp_path / "run").exists()  # refused before anything was written
    data = npz_file(tmp_path)
    assert main(["train", "--method", "simclr", "--data", str(data), "--num-images", "1", "--epochs", "1",
                 "--out", str(tmp_path / "cli"), "--device", "cpu", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--method simclr (its NT-Xent loss" in err


# ---- the hook point of every optimizer step -----------------------------------------------------------------

def test_step_hooks_see_every_optimizer_step(tmp_path):
    from maelens.train.loop import PretrainTask

    config = TrainConfig(model_overrides=SMALL, epochs=2, batch_size=4, accum_iter=2, warmup_epochs=1, device="cpu",
                         precision="fp32", quiet=True, recon_images=0, out=str(tmp_path / "run"))
    seen = []
    loop = run_task(config, PretrainTask(config, images()), step_hooks=[seen.append])
    assert isinstance(loop, RunLoop)
    assert [(s.epoch, s.step) for s in seen] == [(0, 1), (0, 2), (1, 3), (1, 4)]
    assert [s.loss for s in seen] == [r["loss"] for r in read_log(tmp_path / "run" / "log.jsonl") if r["kind"] == "step"]


# ---- a device that is not there is refused by every rank before the process group is formed ----------------

@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("rank", ["0", "1"])
def test_every_rank_refuses_a_missing_cuda_before_joining_the_group(rank, tmp_path, capsys, monkeypatch):
    # no MASTER_ADDR: a rank that tried to form the group would fail with torch's own error instead
    for name, value in {"WORLD_SIZE": "2", "RANK": rank, "LOCAL_RANK": rank}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    assert main(["train", "--device", "cuda", "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("maelens train: error: --device cuda") and "Traceback" not in err
    assert not torch.distributed.is_initialized() and not (tmp_path / "run").exists()


# ---- the shared run fields are checked once, for every task -------------------------------------------------

@pytest.mark.parametrize("config_type", [TrainConfig, SegmentConfig])
@pytest.mark.parametrize("field, value", [("epochs", 0), ("accum_iter", 0), ("save_every", -1), ("keep_last", -2),
                                          ("batch_size", 1.5), ("blr", float("nan")), ("clip_grad", 0.0),
                                          ("precision", "fp8"), ("schedule", "step"), ("num_images", 0)])
def test_every_run_configuration_refuses_the_same_bad_shared_values(config_type, field, value):
    with pytest.raises(ConfigError, match=field):
        config_type(**{field: value})
