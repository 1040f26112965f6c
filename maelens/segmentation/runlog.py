"""The fine-tuning's logs: :class:`maelens.train.runlog.RunLog` (every record in ``log.jsonl``, atomic
rewrite on resume) with a CSV of one row per epoch: epoch, train_loss, eval_loss, pixel_accuracy, miou."""

from __future__ import annotations

from ..train.runlog import RunLog

SEG_LOG_FIELDS = ("epoch", "train_loss", "eval_loss", "pixel_accuracy", "miou", "lr", "time_s")


class SegmentationLog(RunLog):
    """``log.jsonl`` with the start, step and epoch records; ``log.csv`` with the epoch records only."""

    csv_fields = SEG_LOG_FIELDS
    csv_kinds = ("epoch",)

__all__ = ["SEG_LOG_FIELDS", "SegmentationLog"]
