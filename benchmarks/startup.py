"""Command start-up time: ``python -m maelens --help``, ``maelens distfit --help`` and ``maelens distfit
--features-file`` (200 x 3,840 values, no law ranking) against an empty interpreter (``python -c pass``), each in a fresh
process, repeats interleaved; median and fastest wall time. ``--old PATH`` also runs the same commands on
another checkout (e.g. ``git -C main archive HEAD | tar -x -C PATH``), interleaved with this one.

    .venv/bin/python benchmarks/startup.py [--repeats 5] [--old PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def timed(argv: list[str], checkout: Path | None) -> float:
    """Wall time of one run of ``python argv`` in ``checkout`` (its maelens first on the path: ``-m``
    puts the working directory there); its output discarded; fails loudly on a non-zero exit."""
    env = dict(os.environ)
    if checkout is not None:
        env["PYTHONPATH"] = str(checkout)
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv], env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, cwd=checkout)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--old", type=Path, help="another maelens checkout, timed interleaved with this one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        features = Path(tmp) / "features.npy"
        np.save(features, np.random.default_rng(0).standard_t(5.0, (200, 3840)))
        cases = {
            "python -c pass": (["-c", "pass"], None),
            "maelens --help": (["-m", "maelens", "--help"], ROOT),
            "maelens distfit --help": (["-m", "maelens", "distfit", "--help"], ROOT),
            "maelens distfit --features-file (200 x 3,840)":
                (["-m", "maelens", "distfit", "--features-file", str(features), "--out", f"{tmp}/out",
                  "--overwrite", "--quiet", "--rank-samples", "0"], ROOT),
        }
        if args.old is not None:
            for name, (argv, path) in list(cases.items()):
                if path is not None:
                    cases[f"{name} [old]"] = (argv, args.old.resolve())
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.repeats):
            for name, (argv, path) in cases.items():
                times[name].append(timed(argv, path))
    print(f"{'command':<52} {'median s':>9} {'min s':>7}")
    for name, values in times.items():
        print(f"{name:<52} {statistics.median(values):9.2f} {min(values):7.2f}")


if __name__ == "__main__":
    main()
