"""Running a worker script in two CPU processes under torchrun (gloo), for the distributed tests."""

import os
import subprocess
import sys
from pathlib import Path


def run_two_processes(worker: str, folder: Path, out: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Write ``worker`` (Python source) into ``folder`` and run it with ``torchrun --nproc_per_node=2``,
    passing ``out`` as its argument; one thread per process, matplotlib without a display."""
    script = folder / "worker.py"
    script.write_text(worker)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script), str(out)], env=env, capture_output=True, text=True, timeout=timeout)
