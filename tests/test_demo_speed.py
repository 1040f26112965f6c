"""What makes ``make demo`` faster (issue 23) without changing what it computes: the per-epoch reconstruction
figure drawn after the first, every k-th and the last epoch only."""

from types import SimpleNamespace

import pytest

import maelens.plots.reconstruction as recon


def test_reconstruction_every_draws_the_first_every_kth_and_last_epoch(monkeypatch):
    drawn = []
    monkeypatch.setattr(recon, "epoch_reconstruction", lambda event: drawn.append(event.epoch))
    draw = recon.reconstruction_every(10)
    for epoch in range(25):
        draw(SimpleNamespace(epoch=epoch, config=SimpleNamespace(epochs=25)))
    assert drawn == [0, 9, 19, 24]
    drawn.clear()
    every = recon.reconstruction_every(1)
    for epoch in range(3):
        every(SimpleNamespace(epoch=epoch, config=SimpleNamespace(epochs=3)))
    assert drawn == [0, 1, 2]
    with pytest.raises(ValueError, match="every"):
        recon.reconstruction_every(0)
