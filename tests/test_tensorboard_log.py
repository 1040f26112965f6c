"""``maelens train --tensorboard DIR`` (issue 27): the log's step and epoch scalars in TensorBoard event files,
read back with tensorboard's own reader; without the package, one line and exit 2 before any work."""

import json

import pytest

from maelens.cli import main


def test_records_become_scalars_once(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from maelens.tensorboard_log import TensorBoardLog

    records = [{"kind": "start", "epoch": 0, "step": 0},
               {"kind": "step", "epoch": 0, "step": 1, "loss": 0.5, "lr": 1e-4, "images_per_s": 10.0},
               {"kind": "step", "epoch": 0, "step": 2, "loss": 0.25, "lr": 2e-4, "images_per_s": 12.0},
               {"kind": "epoch", "epoch": 0, "step": 2, "loss": 0.375, "lr": 2e-4, "images_per_s": 11.0}]
    board = TensorBoardLog(tmp_path / "tb")
    assert board.write(records) == 3          # the start record is no scalar
    assert board.write(records[:3]) == 0      # written once, whatever is passed again
    board.close()
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("step/loss")] == [(1, 0.5), (2, 0.25)]
    assert [(e.step, round(e.value, 6)) for e in acc.Scalars("epoch/loss")] == [(2, 0.375)]
    assert "epoch/images_per_s" in acc.Tags()["scalars"]


def test_train_writes_its_log_to_tensorboard(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, tb = tmp_path / "run", tmp_path / "tb"
    assert main(["train", "--preset", "tiny", "--data", "bundled", "--num-images", "64", "--epochs", "2",
                 "--batch-size", "32", "--recon-images", "0", "--device", "cpu", "--quiet", "--out", str(out),
                 "--tensorboard", str(tb)]) == 0
    steps = [r for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if r.get("kind") == "step"]
    acc = EventAccumulator(str(tb))
    acc.Reload()
    got = [(e.step, e.value) for e in acc.Scalars("step/loss")]
    assert [s for s, _ in got] == [r["step"] for r in steps]
    assert [v for _, v in got] == pytest.approx([r["loss"] for r in steps], rel=1e-6)


def test_missing_tensorboard_is_one_line_before_any_work(tmp_path, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard") or name.split(".")[0] == "tensorboard":
            raise ImportError("no tensorboard here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    out = tmp_path / "run"
    code = main(["train", "--preset", "tiny", "--epochs", "1", "--device", "cpu", "--quiet", "--out", str(out),
                 "--tensorboard", str(tmp_path / "tb")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and "pip install tensorboard" in err[0]
    assert not out.exists() or not any(out.iterdir())
