"""Training logs: one record per optimizer step and per epoch in ``log.jsonl`` and ``log.csv``.

Both files are append-only streams that can be followed while the run goes on; a resumed run first
rewrites them (atomically) without the records of the epoch that was interrupted.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from .. import run_files
from ..io import write_text

LOG_FIELDS = ("kind", "epoch", "step", "loss", "lr", "images_per_s", "time_s")


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """Records of a ``log.jsonl`` file (empty list when there is none)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class RunLog:
    """Appends records to ``out_dir/log.jsonl`` and ``out_dir/log.csv``; does nothing when disabled.

    ``keep_before_epoch``: keep existing records of epochs before this one (a resumed run); ``None``
    starts both files afresh. Subclasses choose the CSV's columns (``csv_fields``) and which kinds of
    record it holds (``csv_kinds``; ``None``: every kind but ``start``).
    """

    csv_fields: tuple[str, ...] = LOG_FIELDS
    csv_kinds: tuple[str, ...] | None = None

    def __init__(self, out_dir: str | Path, *, enabled: bool = True, keep_before_epoch: int | None = None):
        self.jsonl_path = Path(out_dir) / run_files.LOG_JSONL
        self.csv_path = Path(out_dir) / run_files.LOG_CSV
        self.enabled = enabled
        self._jsonl = self._csv = None
        if not enabled:
            return
        kept = []
        if keep_before_epoch is not None:
            kept = [r for r in read_log(self.jsonl_path) if r.get("epoch", 0) < keep_before_epoch]
        write_text(self.jsonl_path, "".join(self._json_line(r) for r in kept))
        write_text(self.csv_path, self._csv_text([r for r in kept if self._in_csv(r)], header=True))
        self._jsonl = open(self.jsonl_path, "a", encoding="utf-8")
        self._csv = open(self.csv_path, "a", encoding="utf-8", newline="")

    @staticmethod
    def _json_line(record: dict[str, Any]) -> str:
        return json.dumps({k: _clean(v) for k, v in record.items()}, allow_nan=False) + "\n"

    def _in_csv(self, record: dict[str, Any]) -> bool:
        kind = record.get("kind")
        return kind != "start" if self.csv_kinds is None else kind in self.csv_kinds

    def _csv_text(self, records: list[dict[str, Any]], header: bool) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.csv_fields, extrasaction="ignore", lineterminator="\n")
        if header:
            writer.writeheader()
        writer.writerows({k: _clean(v) for k, v in r.items()} for r in records)
        return buf.getvalue()

    def log(self, *, csv_row: bool = True, **record: Any) -> None:
        """Append one record (keys from :data:`LOG_FIELDS`; others go to the JSON lines only).
        ``csv_row=False`` keeps a non-numeric record (the run's start: precision, threads) out of the CSV."""
        if not self.enabled:
            return
        self._jsonl.write(self._json_line(record))
        if csv_row and (self.csv_kinds is None or record.get("kind") in self.csv_kinds):
            self._csv.write(self._csv_text([record], header=False))
        self._jsonl.flush()
        self._csv.flush()

    def close(self) -> None:
        """Close both files."""
        for handle in (self._jsonl, self._csv):
            if handle is not None:
                handle.close()
        self._jsonl = self._csv = None

    def __enter__(self) -> "RunLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

__all__ = ["LOG_FIELDS", "RunLog", "read_log"]
