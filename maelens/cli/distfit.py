"""Sub-command module (filled in by its issue)."""


def register(subparsers) -> None:
    """Adds no command yet."""
