"""The thread governor (issue 23): it times steps at n and n - 1 threads, keeps the faster, re-checks
after ``recheck_every`` steps and says when its choice changes; a fake clock makes the steps' times."""

import pytest

from maelens.train.thread_governor import ThreadGovernor


class Machine:
    """Step times by thread count (what a busy competitor does to 2 threads on 2 cores), and the calls."""

    def __init__(self, seconds):
        self.seconds, self.threads, self.calls = dict(seconds), None, []

    def set_threads(self, n):
        self.threads = n
        self.calls.append(n)

    def run(self, governor, steps):
        for _ in range(steps):
            governor.step_done(self.seconds[self.threads or governor.max_threads])


def test_it_keeps_n_threads_on_an_idle_machine_and_says_nothing():
    machine, notes = Machine({2: 0.10, 1: 0.19}), []
    gov = ThreadGovernor(2, trial_steps=3, recheck_every=50, warmup=2, notify=notes.append,
                         set_threads=machine.set_threads)
    machine.run(gov, 100)
    assert gov.threads == 2 and machine.threads == 2 and notes == [] and gov.changes == []
    assert 1 in machine.calls  # it did try one thread


def test_it_drops_a_thread_under_load_and_returns_when_the_load_goes():
    machine, notes = Machine({2: 0.80, 1: 0.20}), []
    gov = ThreadGovernor(2, trial_steps=3, recheck_every=50, warmup=2, notify=notes.append,
                         set_threads=machine.set_threads)
    # warm-up 2, then 3 steps at 2 threads, 1 skipped + 3 at 1 thread: decided after 9 steps
    machine.run(gov, 9)
    assert gov.threads == 1 and machine.threads == 1 and gov.changes == [(2, 1)]
    assert len(notes) == 1 and "CPU threads 2 -> 1" in notes[0] and "0.800 s at 2" in notes[0]
    machine.seconds = {2: 0.10, 1: 0.20}  # the competitor stopped
    machine.run(gov, 49)
    assert gov.threads == 1  # not re-checked yet
    machine.run(gov, 1 + 1 + 3 + 1 + 3)  # the countdown's last step, then the check (1 skip each way)
    assert gov.threads == 2 and machine.threads == 2 and gov.changes == [(2, 1), (1, 2)] and len(notes) == 2
    gov.restore()
    assert machine.threads == 2


def test_a_small_gain_within_the_margin_keeps_n_threads_and_restore_undoes_a_drop():
    machine = Machine({2: 0.100, 1: 0.098})
    gov = ThreadGovernor(2, trial_steps=3, warmup=1, margin=0.05, set_threads=machine.set_threads)
    machine.run(gov, 20)
    assert gov.threads == 2
    machine = Machine({2: 1.0, 1: 0.1})
    gov = ThreadGovernor(2, trial_steps=2, warmup=1, set_threads=machine.set_threads)  # quiet: no notify
    machine.run(gov, 10)
    assert gov.threads == 1
    gov.restore()
    assert machine.threads == 2 and gov.threads == 2


def test_one_thread_or_disabled_does_nothing():
    machine = Machine({1: 0.1})
    for gov in (ThreadGovernor(1, set_threads=machine.set_threads),
                ThreadGovernor(4, enabled=False, set_threads=machine.set_threads)):
        for _ in range(20):
            gov.step_done(0.1)
    assert machine.calls == []
    with pytest.raises(ValueError, match="trial_steps"):
        ThreadGovernor(2, trial_steps=0)


def test_the_trainer_reports_every_step_and_restores_the_threads(tmp_path, monkeypatch):
    import torch
    from torch.utils.data import TensorDataset

    import maelens.train.runloop as loop
    from maelens.train import TrainConfig, train

    made = []

    class Recording(ThreadGovernor):
        def __init__(self, threads, **kwargs):
            super().__init__(threads, **kwargs)
            self.steps, self.restored = 0, False
            made.append(self)

        def step_done(self, seconds):
            assert seconds > 0
            self.steps += 1

        def restore(self):
            self.restored = True

    monkeypatch.setattr(loop, "ThreadGovernor", Recording)
    data = TensorDataset(torch.randn(16, 3, 32, 32), torch.zeros(16))
    train(TrainConfig(preset="tiny", epochs=2, batch_size=8, warmup_epochs=1, quiet=True, recon_images=0,
                      out=str(tmp_path / "run")), dataset=data)
    (governor,) = made
    assert governor.steps == 4 and governor.restored and governor.notify is not None
