"""Wall time of ``make demo`` (``experiments/demo.py``) in a fresh output folder, so nothing is reused.

    python benchmarks/demo_timing.py                 # as this CPU runs it
    python benchmarks/demo_timing.py --no-bf16       # as a CPU without native bf16 (AVX2 only) runs it

``--no-bf16`` makes ``--precision auto`` see no AVX512-BF16/AMX flag, as on the project's AVX2-only
machine kind; start the process with ``MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2
ONEDNN_MAX_CPU_ISA=AVX2`` to also keep torch's kernels to AVX2 (``benchmarks/idle_suite.sh`` does).
Prints one JSON line: seconds, the precision the demo's training used, torch's CPU capability.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-bf16", action="store_true", help="precision auto as on a CPU without native bf16")
    parser.add_argument("--keep", type=Path, default=None, help="run in this folder (default: a temporary one)")
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME",
                        help="only these of the demo's experiments (a quick check that the timing runs)")
    args = parser.parse_args(argv)
    import torch

    import maelens.train.precision as precision

    if args.no_bf16:
        precision.cpu_bf16_flags = lambda cpuinfo="/proc/cpuinfo": []
    sys.path.insert(0, str(ROOT / "experiments"))
    import demo

    if args.only:
        demo.DEMO_EXPERIMENTS = tuple(args.only)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp) / "demo"
        start = time.perf_counter()
        status = demo.main(["--out", str(out), "--quiet"])
        seconds = time.perf_counter() - start
        used = sorted({json.loads(p.read_text()).get("precision", {}).get("precision", "?")
                       for p in out.glob("models/*/summary.json")})
    print(json.dumps({"seconds": round(seconds, 1), "status": status, "experiments": list(demo.DEMO_EXPERIMENTS), "training_precision": used,
                      "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads()}))
    return status


if __name__ == "__main__":
    sys.exit(main())
