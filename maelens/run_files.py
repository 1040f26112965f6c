"""Names of the files in a run folder, shared by the trainer, the segmentation fine-tuning and the loaders
(one definition, so that a run written by one is found by the others)."""

#: The latest state of a run (weights, optimizer, schedule, config): what ``--resume auto`` continues
#: and what ``--ckpt RUN_FOLDER`` loads.
CHECKPOINT = "checkpoint.pt"
#: The run's outcome: its configuration, final metrics and ``status`` (``completed``, ``interrupted``,
#: ``diverged`` or ``failed``, with the ``message`` saying why): every run that got past its set-up writes one.
SUMMARY = "summary.json"
#: One row per logged step or epoch (CSV) and every record, including the start record (JSON lines).
LOG_CSV = "log.csv"
LOG_JSONL = "log.jsonl"

__all__ = ["CHECKPOINT", "LOG_CSV", "LOG_JSONL", "SUMMARY"]
