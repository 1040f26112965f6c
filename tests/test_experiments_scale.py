"""experiments/run.py's scales (issue 12): which model, data and sizes each scale means."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

from common import Context  # noqa: E402


def test_scales_pick_model_data_and_sizes(tmp_path):
    quick, cpu, full = (Context(out=tmp_path, scale=s) for s in ("quick", "paper-cpu", "full"))
    assert (quick.preset, quick.pretrain_data, quick.epochs) == ("tiny", "bundled", 30)
    # paper-cpu is the paper's model and recipe length; only the comparisons are shortened
    assert (cpu.preset, cpu.pretrain_data, cpu.epochs) == ("ipol64", "photos", 100)
    assert (full.preset, full.epochs, full.comparison_epochs) == ("ipol64", 100, 100)
    cpu.__dict__["_pretrain_images"] = 4599  # the set the paper-cpu budget was sized on: 17 steps of 256
    assert cpu.comparison_epochs < cpu.epochs
    assert (quick.n(1, 3, 2), cpu.n(1, 3, 2), full.n(1, 3, 2)) == (1, 2, 3)
    assert cpu.n(1, 3) == 3  # paper-cpu defaults to the paper's size
    with pytest.raises(ValueError, match="scale"):
        Context(out=tmp_path, scale="huge")


def test_run_accepts_the_scale_flags():
    import run

    with pytest.raises(SystemExit) as exit_info:
        run.main(["--scale", "nope"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("images, epochs", [(4599, 30), (2429, 57), (256, 510), (100, 510), (50_000, 30)])
def test_comparison_models_take_at_least_the_step_floor_whatever_the_data_size(tmp_path, images, epochs):
    """paper-cpu: 30 epochs, or more where 30 would be fewer than 510 steps of 256 (the trainer drops the last
    partial batch: 2,429 images are 9 steps an epoch, ceil(510 / 9) = 57; fewer images than a batch count as
    one step an epoch)."""
    cpu = Context(out=tmp_path, scale="paper-cpu")
    cpu.__dict__["_pretrain_images"] = images
    assert cpu.comparison_epochs == epochs


def test_the_step_floor_leaves_quick_and_full_alone(tmp_path):
    for scale, epochs in (("quick", 20), ("full", 100)):
        ctx = Context(out=tmp_path, scale=scale)
        ctx.__dict__["_pretrain_images"] = 10  # would raise the epochs if a floor applied
        assert ctx.comparison_epochs == epochs
