"""Names of a package that load their module on first use (PEP 562), so that importing a package imports
nothing heavy: ``from maelens.models.presets import PRESETS`` must not load torch through
``maelens/models/__init__.py`` (the command line's parser reads its choices that way)."""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable


def lazy_names(package: str, where: dict[str, str]) -> Callable[[str], Any]:
    """The ``__getattr__`` of ``package`` for the names of ``where`` (name -> submodule): the submodule is
    imported when a name is first read, and the value kept in the package for the next reads."""

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{where[name]}", package), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__


__all__ = ["lazy_names"]
