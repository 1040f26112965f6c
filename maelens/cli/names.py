"""Names the parser offers as choices and defaults, read from the library's source without importing it.

Building the parser must not import torch (issue 15: ``maelens --help`` in a fraction of a second), but
the choices of ``--preset``, ``--mask``, ``--precision``, ... are defined next to the code that uses them,
in modules that import torch (or whose packages do). They are plain literals - a tuple of strings, the
keys of a dict, a number, a string - so :func:`library_literal` reads them from the module's source with
:mod:`ast`: the library stays the one place that defines them, and nothing is imported.
``tests/test_startup.py`` checks every value read here against the imported module.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path
from typing import Any

_PACKAGE = Path(__file__).resolve().parents[1]
_READ: set[tuple[str, str]] = set()


@lru_cache(maxsize=None)
def _assignments(module: str) -> dict[str, ast.expr]:
    """Top-level ``NAME = value`` (or ``NAME: type = value``) of ``maelens.<module>``, by name."""
    path = _PACKAGE.joinpath(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: dict[str, ast.expr] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.value is not None:
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            found[node.target.id] = node.value
    return found


@lru_cache(maxsize=None)
def library_literal(module: str, name: str) -> Any:
    """The value of ``maelens.<module>.<name>`` when it is a literal; for a dict whose values are not
    (``PRESETS``: name -> ModelConfig(...)), the tuple of its keys. Raises ``LookupError`` when the
    module defines no such literal (a programming error the start-up test catches). Where the module
    ships without its source, it is imported instead (correct, only slower)."""
    _READ.add((module, name))
    try:
        value = _assignments(module).get(name)
    except FileNotFoundError:  # installed without sources (.pyc only): import it after all
        import importlib

        found = getattr(importlib.import_module(f"maelens.{module}"), name)
        return tuple(found) if isinstance(found, dict) else found
    if value is None:
        raise LookupError(f"maelens.{module} has no top-level assignment to {name}")
    try:
        return ast.literal_eval(value)
    except ValueError:
        if isinstance(value, ast.Dict) and all(key is not None for key in value.keys):
            return tuple(ast.literal_eval(key) for key in value.keys)
        raise LookupError(f"maelens.{module}.{name} is not a literal the parser can read without importing") from None


def read_names() -> list[tuple[str, str]]:
    """Every ``(module, name)`` read so far (after :func:`~maelens.cli.build_parser`: all the parser uses)."""
    return sorted(_READ)
