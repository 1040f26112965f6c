"""Errors that speak to the user: the CLI prints their message on one line and exits with status 2."""


class MaelensError(Exception):
    """Base class: a problem with the user's input (file, argument, data), not a bug."""


class CheckpointError(MaelensError):
    """A checkpoint is missing, unreadable, unsafe, of unknown format, or does not fit the model."""


class DataError(MaelensError):
    """A dataset or image file is missing, unreadable or of the wrong shape."""


class ConfigError(MaelensError):
    """An argument or configuration value is invalid."""
