"""Run folders written before the one run loop (issue 22; ``tests/fixtures/old_runs``, written by the code of
commit 174856a) resume with today's code: the epoch after the checkpoint gives the records the old code gave
when it ran on without stopping."""

import json
import shutil
from pathlib import Path

import fixtures.make_old_runs as old
import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"

COMPARED = ("epoch", "step", "loss", "train_loss", "eval_loss", "pixel_accuracy", "miou", "lr")


def _same_records(got: list[dict], want: list[dict]) -> None:
    assert [r["epoch"] for r in got] == [r["epoch"] for r in want]
    for g, w in zip(got, want):
        keys = [k for k in COMPARED if k in w]
        assert [g[k] for k in keys] == pytest.approx([w[k] for k in keys], rel=1e-5), keys


def test_an_old_pretraining_folder_resumes_to_the_records_of_an_uninterrupted_run(tmp_path):
    from maelens.train import train

    out = tmp_path / "mae"
    shutil.copytree(FIXTURES / "old_runs" / "mae", out)
    result = train(old.mae_config(out, 2, resume="auto"), dataset=old.mae_images())
    assert result.summary["resumed_from"] == str(out / "checkpoint.pt") and result.summary["status"] == "completed"
    _same_records(result.history, json.loads((FIXTURES / "old_runs" / "mae_full.json").read_text()))


def test_an_old_segmentation_folder_resumes_to_the_records_of_an_uninterrupted_run(tmp_path):
    from maelens.segmentation import finetune

    out = tmp_path / "segment"
    shutil.copytree(FIXTURES / "old_runs" / "segment", out)
    result = finetune(old.seg_config(out, 2, resume="auto"), train_data=old.Squares(16, 1),
                      eval_data=old.Squares(8, 2), encoder=old.small_mae())
    assert result.summary["resumed_from"] == str(out / "checkpoint.pt") and result.summary["status"] == "completed"
    _same_records(result.history, json.loads((FIXTURES / "old_runs" / "segment_full.json").read_text()))
