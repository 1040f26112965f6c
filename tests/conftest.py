"""Shared test set-up: small thread count and a non-interactive matplotlib backend."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

# One thread per test process: the suite runs as two pytest-xdist workers on two cores, and the tiny
# networks in the tests run several times faster on one thread than on two contended ones.
torch.set_num_threads(1)
