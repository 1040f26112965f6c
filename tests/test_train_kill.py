"""A run killed with SIGKILL after its first checkpoint resumes to the same loss curve and weights as
a run that was never interrupted (issue 2, "Checkpoint every epoch and --resume")."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from maelens import load_checkpoint
from maelens.train import TrainConfig, train
from maelens.train.runlog import read_log

WORKER = textwrap.dedent('''
    import json, sys, time, torch
    from torch.utils.data import Dataset
    from maelens.train import TrainConfig, train

    class SlowAfterFirstEpoch(Dataset):
        """The test's images; from the second epoch on each read is slow, so the kill lands mid-run."""
        def __init__(self):
            self.x = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
            self.reads = 0
        def __len__(self):
            return 64
        def __getitem__(self, i):
            self.reads += 1
            if self.reads > 64:
                time.sleep(0.05)
            return self.x[i], 0

    torch.set_num_threads(1)
    config = TrainConfig(**json.loads(sys.argv[1]))
    train(config, dataset=SlowAfterFirstEpoch())
''')


def settings(out):
    return dict(preset="tiny", epochs=3, batch_size=8, warmup_epochs=1, blr=1e-2, masking="random",
                quiet=True, recon_images=0, out=str(out))


def test_sigkilled_run_resumes_to_the_uninterrupted_curve(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(script), json.dumps(settings(killed))],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not (killed / "checkpoint.pt").exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert load_checkpoint(killed / "checkpoint.pt").epoch == 0

    x = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    data = torch.utils.data.TensorDataset(x, torch.zeros(64, dtype=torch.long))
    resumed = train(TrainConfig(**settings(killed), resume="auto"), dataset=data)
    full = train(TrainConfig(**settings(tmp_path / "full")), dataset=data)

    assert resumed.summary["resumed_from"] is not None
    assert [r["loss"] for r in resumed.history] == pytest.approx([r["loss"] for r in full.history], rel=1e-6)
    steps = [[r["loss"] for r in read_log(d / "log.jsonl") if r["kind"] == "step"] for d in (killed, tmp_path / "full")]
    assert len(steps[0]) == len(steps[1]) == 24
    assert steps[0] == pytest.approx(steps[1], rel=1e-6)
    for a, b in zip(resumed.model.parameters(), full.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert not list(killed.glob(".*")), "temporary files left behind"
