"""Warnings for known-slow or useless set-ups and the overall ETA (issue 27)."""

import io

from maelens.cli import main
from maelens.cli.eta import EpochClock, StageClock, duration
from maelens.setup_warnings import WarnOnce, config_warnings, log_warnings


def steps(epochs, per_epoch, lr=1e-4):
    out = [{"kind": "start", "epoch": 0, "step": 0}]
    step = 0
    for e in range(epochs):
        for _ in range(per_epoch):
            step += 1
            out.append({"kind": "step", "epoch": e, "step": step, "loss": 1.0, "lr": 0.0 if step == 1 else lr})
        out.append({"kind": "epoch", "epoch": e, "step": step, "loss": 1.0, "lr": lr})
    return out


def test_log_warnings_on_hand_made_logs():
    one_step = steps(1, 1)  # the torchrun case of the issue: 1 step per rank, at lr 0 (warm-up from 0)
    said = log_warnings(one_step, world_size=2, finished=True)
    assert len(said) == 2 and "1 optimizer step per process (2 process(es))" in said[0]
    assert "all 1 optimizer step(s) ran at learning rate 0" in said[1]
    assert log_warnings(one_step, world_size=2, finished=False)[1:] == []  # lr 0 said only at the end
    assert log_warnings(steps(3, 5), finished=True) == []
    assert log_warnings(steps(0, 0)) == []  # no epoch ended yet: nothing to say
    zero = [dict(r, lr=0.0) for r in steps(2, 3)]
    assert log_warnings(zero, finished=True) == ["all 6 optimizer step(s) ran at learning rate 0 (the warm-up "
                                                 "starts from 0): the weights did not change"]


def test_config_warnings():
    assert config_warnings(method="simclr", image_size=32, stem="cifar", peak_lr=1e-3) == []
    said = config_warnings(method="simclr", image_size=64, stem="cifar", peak_lr=0.0)
    assert len(said) == 2 and "peak learning rate is 0" in said[0] and "stem=cifar at 64 px" in said[1]
    assert config_warnings(method="mae", image_size=64, stem=None, peak_lr=1e-4) == []


def test_warn_once_and_the_clock():
    heard = []
    warn = WarnOnce(heard.append)
    warn(["a", "b"])
    warn(["a", "c"])
    assert heard == ["a", "b", "c"]
    stream = io.StringIO()
    clock = StageClock("compare", stream=stream)
    clock("attention m1", 0, 4)
    clock.start -= 30  # 30 s for the first stage: 3 more stages, 90 s
    clock("attention m2", 1, 4)
    clock.finished(2, 4)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "maelens compare: stage 1/4 (attention m1)"
    assert lines[1].startswith("maelens compare: stage 2/4 (attention m2), about 1 min 3") and lines[1].endswith("s left")
    assert lines[2].startswith("maelens compare: 2/4 epochs done, about ")
    assert duration(42) == "42 s" and duration(185) == "3 min 05 s" and duration(3720) == "1 h 02 min"
    resumed = io.StringIO()
    epochs = EpochClock("train", 10, stream=resumed)
    epochs.epoch_done(4)  # a run resumed at epoch 4: its first epoch done of the 6 it runs
    epochs.epoch_done(9)
    assert resumed.getvalue().splitlines()[0].startswith("maelens train: 1/6 epochs done, about ")
    assert resumed.getvalue().splitlines()[1] == "maelens train: 6/6 epochs done"
    quiet = io.StringIO()
    StageClock("x", quiet=True, stream=quiet)("a", 1, 2)
    assert quiet.getvalue() == ""


def test_train_says_it_once_and_draws_the_loss(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--preset", "tiny", "--data", "bundled", "--epochs", "2", "--warmup-epochs", "2",
                 "--num-images", "96", "--batch-size", "64", "--out", str(out), "--quiet", "--device", "cpu"])
    assert code == 0
    err = capsys.readouterr().err
    assert err.count("warning: an epoch is 1 optimizer step per process") == 1
    assert (out / "loss.png").is_file()
