"""Training scalars for TensorBoard (``maelens train --tensorboard DIR``), an optional extra.

The trainer writes every step and epoch to ``log.jsonl``; this module mirrors those records into TensorBoard
event files after each epoch, so a run can be watched with ``tensorboard --logdir DIR`` beside the ``loss.png``
that ``train`` draws. It reads the log rather than hooking the loop: the run loop knows nothing of TensorBoard,
and a resumed run's earlier steps (kept in ``log.jsonl``) are written again with the same step numbers, which
TensorBoard shows as one curve.

Scalars: ``step/loss``, ``step/lr``, ``step/images_per_s`` at each optimizer step; ``epoch/loss``,
``epoch/lr``, ``epoch/images_per_s`` at each epoch's last step. Needs the ``tensorboard`` package
(``pip install tensorboard``), which torch's ``SummaryWriter`` writes with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from .errors import ConfigError

__all__ = ["SCALARS", "TensorBoardLog", "check_tensorboard"]

#: The record fields written as scalars, under ``KIND/FIELD`` (kind ``step`` or ``epoch``).
SCALARS = ("loss", "lr", "images_per_s")


def check_tensorboard() -> None:
    """Raise a ConfigError saying how to install it when the ``tensorboard`` package is missing (checked
    before a run starts, so a run never fails at its first epoch for want of it)."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise ConfigError("tensorboard=DIR needs the tensorboard package: pip install tensorboard") from None


class TensorBoardLog:
    """Writes the step and epoch records of a run's log to TensorBoard event files in ``folder``; call
    :meth:`write` with all the records so far (those already written are skipped), :meth:`close` at the end."""

    def __init__(self, folder: str | Path):
        check_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.folder = Path(folder)
        self.writer = SummaryWriter(log_dir=str(self.folder))
        self.written: set[tuple[str, int]] = set()

    def write(self, records: Iterable[dict[str, Any]]) -> int:
        """Write the scalars of the ``step`` and ``epoch`` records not written yet; returns how many records
        were new. The x axis is the optimizer step (``step``), so epoch means sit at their epoch's last step."""
        new = 0
        for record in records:
            kind, step = record.get("kind"), record.get("step")
            if kind not in ("step", "epoch") or not isinstance(step, int) or (kind, step) in self.written:
                continue
            for field in SCALARS:
                value = record.get(field)
                if isinstance(value, (int, float)):
                    self.writer.add_scalar(f"{kind}/{field}", float(value), global_step=step)
            self.written.add((kind, step))
            new += 1
        self.writer.flush()
        return new

    def close(self) -> None:
        self.writer.close()
