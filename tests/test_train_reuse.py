"""train_or_load trains once, reuses a finished run, and refuses a folder holding other settings."""

import numpy as np
import pytest
import torch

from maelens.errors import ConfigError
from maelens.train import TrainConfig, train_or_load


@pytest.fixture()
def npz(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "imgs.npz"
    np.savez(path, images=rng.integers(0, 255, (16, 32, 32, 3), dtype=np.uint8), labels=np.arange(16) % 2)
    return path


def test_second_call_reuses_the_finished_run(tmp_path, npz):
    config = TrainConfig(preset="tiny", data=str(npz), split="all", epochs=1, batch_size=8, warmup_epochs=0,
                         out=str(tmp_path / "run"), quiet=True, recon_images=0)
    first = train_or_load(config)
    stamp = first.checkpoint.stat().st_mtime_ns
    second = train_or_load(config)
    assert second.checkpoint.stat().st_mtime_ns == stamp
    assert second.history == first.history
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="other settings.*blr"):
        train_or_load(TrainConfig(**{**config.to_dict(), "blr": 1e-3, "betas": tuple(config.betas)}))
