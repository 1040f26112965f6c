"""Training speed beside a competing busy process, relative to the idle speed (issue 23: >= 0.4; the
fair share on 2 cores is 0.5).

One process trains (the model step of ``--preset``: forward + backward + AdamW, fp32, fixed batch) for
``--seconds`` in each of three phases, counting every image over the phase's wall time (the governor's
trial steps included):

1. ``idle``: nothing else started by this benchmark, all usable threads;
2. ``busy, n threads``: a busy-loop process (one core's worth of pure Python) running beside it, the
   thread count fixed at n (what training did before the governor);
3. ``busy, governor``: the same competitor, threads chosen by :class:`maelens.train.thread_governor.ThreadGovernor`
   (n or n - 1, whichever is faster), as ``maelens train`` does.

    python benchmarks/shared_machine.py                 # ipol64, 60 s per phase
    python benchmarks/shared_machine.py --seconds 5     # a quick check that it runs
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from _timing import training_step


def phase(step, batch: int, seconds: float, governor=None) -> dict:
    """Images/s over ``seconds`` of steps (each step finishes; the last may overrun)."""
    start = time.perf_counter()
    steps = 0
    while time.perf_counter() - start < seconds or steps < 2:
        t0 = time.perf_counter()
        step()
        steps += 1
        if governor is not None:
            governor.step_done(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    return {"images_per_s": steps * batch / elapsed, "steps": steps, "seconds": elapsed}


def busy_loop() -> subprocess.Popen:
    """A competitor: one pure-Python busy loop, killed by the caller."""
    return subprocess.Popen([sys.executable, "-c", "while True:\n    pass"])


def main(argv: list[str] | None = None) -> int:
    import torch

    from maelens.train.precision import usable_cpu_threads
    from maelens.train.thread_governor import ThreadGovernor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="ipol64")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each phase")
    parser.add_argument("--json", default=None, metavar="PATH")
    args = parser.parse_args(argv)
    threads = usable_cpu_threads()
    torch.set_num_threads(threads)
    step = training_step(args.preset, args.batch_size)
    for _ in range(3):  # warm-up: allocations, thread pool
        step()
    results = {"idle": phase(step, args.batch_size, args.seconds)}
    competitor = busy_loop()
    try:
        time.sleep(0.5)
        torch.set_num_threads(threads)
        results["busy_n_threads"] = phase(step, args.batch_size, args.seconds)
        notes: list[str] = []
        governor = ThreadGovernor(threads, warmup=1, recheck_every=100, notify=notes.append)
        results["busy_governor"] = phase(step, args.batch_size, args.seconds, governor)
        results["busy_governor"]["threads_chosen"] = governor.threads
        results["busy_governor"]["notes"] = notes
        governor.restore()
    finally:
        competitor.kill()
        competitor.wait()
    idle = results["idle"]["images_per_s"]
    print(f"{args.preset}, batch {args.batch_size}, fp32, {threads} usable thread(s), {args.seconds:g} s per phase")
    for name, r in results.items():
        r["vs_idle"] = r["images_per_s"] / idle
        print(f"{name:<16} {r['images_per_s']:8.1f} images/s  {r['vs_idle']:5.2f} x idle  ({r['steps']} steps)")
    print("governor: " + ("; ".join(results["busy_governor"]["notes"]) or f"kept {threads} thread(s)"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"preset": args.preset, "batch_size": args.batch_size, "threads": threads, **results}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
