"""Errors that speak to the user: the CLI prints their message on one line and exits with status 2."""

from pathlib import Path


class MaelensError(Exception):
    """Base class: a problem with the user's input (file, argument, data), not a bug."""


class CheckpointError(MaelensError):
    """A checkpoint is missing, unreadable, unsafe, of unknown format, or does not fit the model."""


class DataError(MaelensError, ValueError):
    """A dataset or image file is missing, unreadable or of the wrong shape (a ``ValueError`` too, as
    scikit-learn's contract asks of estimators given bad input)."""


class ConfigError(MaelensError, ValueError):
    """An argument or configuration value is invalid (a ``ValueError`` too, as for :class:`DataError`)."""


class OutputError(MaelensError):
    """An output could not be written or put in place (no space left on device, a folder already
    used, another run holding it); ``path`` is the file or folder concerned."""

    def __init__(self, message: str, path: Path | None = None):
        super().__init__(message)
        self.path = path

__all__ = ["CheckpointError", "ConfigError", "DataError", "MaelensError", "OutputError"]
