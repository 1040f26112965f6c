"""Paths as the operating system sees them: what an input path is before it is opened, and names of our own
files that always fit the system's limits (issue 29).

A read of a FIFO or a character device never ends, a symlink loop is not a missing file, and a permission
error is the user's to fix: :func:`check_input` tells them apart with one ``stat`` before anything is
opened. :func:`os_refusal` words any ``OSError`` on a path as one line. :func:`fitting_name` shortens a
name that would exceed ``NAME_MAX`` once a staging prefix and suffix are added (a hash keeps it unique).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import Callable

from .errors import DataError, MaelensError
from .validation import escape

#: Fallbacks when the file system does not say (POSIX's usual values).
NAME_MAX = 255
PATH_MAX = 4096

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def check_input(path: str | os.PathLike, what: str = "input", *, error: Callable[[str], MaelensError] = DataError,
                directory: bool | None = None) -> Path:
    """``path`` when it is a regular file or a directory that can be read; otherwise ``error`` in one line
    saying why: missing, a dangling symlink, a symlink loop, not readable, or another kind of file (a FIFO
    or device, whose read would block or never end). ``directory``: True or False to require one kind."""
    p = Path(path).expanduser()
    shown = escape(str(p))
    try:
        info = os.stat(p)
    except OSError as err:
        raise error(f"{what} {shown}: {_stat_failure(p, err)}") from None
    if stat.S_ISDIR(info.st_mode):
        kind_ok = directory is not False
        readable = os.access(p, os.R_OK | os.X_OK)
    elif stat.S_ISREG(info.st_mode):
        kind_ok = directory is not True
        readable = os.access(p, os.R_OK)
    else:
        kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a regular file")
        raise error(f"{what} {shown}: is {kind}, not a regular file or directory; refused (reading it could "
                    "block forever)")
    if not kind_ok:
        raise error(f"{what} {shown}: is a {'file' if directory else 'directory'}, expected a "
                    f"{'directory' if directory else 'file'}")
    if not readable:
        raise error(f"{what} {shown}: permission denied")
    return p


def _stat_failure(p: Path, err: OSError) -> str:
    """Why ``os.stat`` failed, in words that tell the cases apart."""
    if err.errno == errno.ELOOP:
        return "is a symlink loop (a link that leads back to itself)"
    if err.errno in (errno.ENOENT, errno.ENOTDIR):
        if os.path.islink(p):
            return f"is a symlink to {escape(os.readlink(p))}, which does not exist"
        return "does not exist"
    if err.errno == errno.EACCES:
        return "permission denied (a folder on its way cannot be searched)"
    if err.errno == errno.ENAMETOOLONG:
        return "the name is too long for this file system"
    return err.strerror or str(err)


def os_refusal(err: OSError) -> str:
    """An ``OSError`` on a path as one line: ``PATH: Permission denied`` (escaped, so a path holding a newline
    stays on one line)."""
    name = err.filename if err.filename is not None else "a file"
    text = f"{escape(str(name))}: {err.strerror or err}"
    if err.filename2 is not None:
        text += f" (and {escape(str(err.filename2))})"
    return text


def name_max(folder: str | os.PathLike) -> int:
    """The longest file name ``folder``'s file system accepts."""
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return NAME_MAX


def fitting_name(name: str, folder: str | os.PathLike, extra: int) -> str:
    """``name``, or a shortened form of it (its start, ``~`` and a hash of the whole) such that ``extra`` more
    characters (a staging prefix and suffix) still fit in one file name and the full path stays under
    ``PATH_MAX``: the staging names of our outputs must never be what the system refuses."""
    folder_text = os.path.abspath(folder)
    budget = min(name_max(folder) if os.path.isdir(folder) else NAME_MAX,
                 PATH_MAX - len(folder_text.encode()) - 2) - extra
    if len(name.encode()) <= budget:
        return name
    digest = hashlib.sha1(name.encode(errors="surrogateescape")).hexdigest()[:12]
    keep = max(budget - len(digest) - 1, 1)
    start = name.encode(errors="surrogateescape")[:keep].decode(errors="ignore")
    return f"{start}~{digest}"


__all__ = ["NAME_MAX", "PATH_MAX", "check_input", "fitting_name", "name_max", "os_refusal"]
