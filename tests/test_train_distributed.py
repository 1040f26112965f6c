"""Two CPU processes under torchrun with gloo: both ranks end with the same weights, only rank 0
writes, and the result matches one process training on the same images with twice the batch."""

import json
import textwrap

import pytest
import torch
from torch.utils.data import TensorDataset
from torchrun_helper import run_two_processes

from maelens import load_checkpoint
from maelens.train import TrainConfig, train
from maelens.train.runlog import read_log

WORKER = textwrap.dedent('''
    import os, sys, torch
    from torch.utils.data import TensorDataset
    from maelens.plots.reconstruction import epoch_reconstruction
    from maelens.train import TrainConfig, train

    torch.set_num_threads(1)
    out = sys.argv[1]
    x = torch.randn(32, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    config = TrainConfig(preset="tiny", epochs=1, batch_size=4, warmup_epochs=0, precision="fp32", blr=1e-2, masking="grid",
                         device="cpu", out=out, quiet=True, recon_images=2)
    result = train(config, dataset=TensorDataset(x, torch.zeros(32, dtype=torch.long)),
                   on_epoch_end=epoch_reconstruction)
    torch.save(result.model.state_dict(), os.path.join(out, "weights-rank%s.pt" % os.environ["RANK"]))
''')


def test_two_gloo_processes_end_with_identical_weights(tmp_path):
    # float32 on both sides: under bf16 autocast a batch of 8 and two of 4 round differently
    out = tmp_path / "ddp"
    proc = run_two_processes(WORKER, tmp_path, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0 = torch.load(out / "weights-rank0.pt", weights_only=True)
    rank1 = torch.load(out / "weights-rank1.pt", weights_only=True)
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    saved = load_checkpoint(out / "checkpoint.pt").model.state_dict()
    assert all(torch.equal(saved[n], rank0[n]) for n in rank0)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["effective_batch_size"] == 8 and summary["steps_per_epoch"] == 4
    steps = [r for r in read_log(out / "log.jsonl") if r["kind"] == "step"]
    assert len(steps) == 4  # rank 0's log only
    assert (out / "recon_epoch_000.png").is_file()

    # the sampler gives rank r the images perm[r::2], so each step of the two ranks together sees the
    # 8 images one process sees with batch 8; with grid masks the runs agree up to float rounding
    x = torch.randn(32, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    single = train(TrainConfig(preset="tiny", epochs=1, batch_size=8, warmup_epochs=0, precision="fp32", blr=1e-2, masking="grid",
                               device="cpu", out=str(tmp_path / "single"), quiet=True, recon_images=0),
                   dataset=TensorDataset(x, torch.zeros(32, dtype=torch.long)))
    single_steps = [r for r in read_log(tmp_path / "single" / "log.jsonl") if r["kind"] == "step"]
    assert [r["loss"] for r in steps] == pytest.approx([r["loss"] for r in single_steps], rel=1e-4)
    assert single.summary["peak_lr"] == pytest.approx(summary["peak_lr"])
