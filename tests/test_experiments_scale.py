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
