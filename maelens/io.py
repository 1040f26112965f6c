"""Atomic output writers: every file appears whole under its final name or not at all; a command's
files appear together (:func:`output_folder`); a training folder has one writer at a time
(:func:`folder_lock`); a full disk is one :class:`~maelens.errors.OutputError` naming the path."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import ConfigError, OutputError

#: errno values meaning the file system has no room left (quota included).
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    ``suffix`` (default: the target's suffix) lets writers that infer the format from the file
    name (matplotlib, numpy) see the right extension.
    """
    target = Path(path)
    with disk_full_names(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        suffix = suffix if suffix is not None else target.suffix
        # 1 dot + 1 dot + 8 random characters + the suffix: the staging name must fit where the target fits
        fd, tmp = tempfile.mkstemp(prefix=f".{staging_stem(target, 10 + len(suffix))}.", suffix=suffix,
                                   dir=target.parent)
        os.close(fd)
    tmp_path = Path(tmp)
    try:
        with disk_full_names(target):
            yield tmp_path
            os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
            os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def staging_stem(target: Path, extra: int) -> str:
    """``target``'s name, shortened with a hash when ``extra`` more characters would not fit the file system's
    name or path limits (:func:`maelens.paths.fitting_name`)."""
    from .paths import fitting_name

    return fitting_name(target.name, target.parent if target.parent.is_dir() else ".", extra)


#: Characters a staging folder's name adds to its stem: ``.`` ``.PID`` (up to 10 digits) ``.`` 8 random
#: characters ``.partial``.
_STAGING_EXTRA = 1 + 11 + 1 + 8 + len(".partial")


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` is an OSError saying the device (or the user's quota) has no space left."""
    return isinstance(err, OSError) and err.errno in _DISK_FULL


@contextmanager
def disk_full_names(path: str | os.PathLike) -> Iterator[None]:
    """Turn a full disk inside the block into one line naming ``path``: libraries (torch, numpy,
    matplotlib) report it as a bare OSError, or wrapped in their own error, that does not say which
    output it was."""
    try:
        yield
    except OutputError:
        raise
    except Exception as err:
        if not (_caused_by_full_disk(err) or _out_of_space(Path(path).parent)):
            raise
        raise OutputError(f"no space left on device while writing {path}", Path(path)) from err


def _caused_by_full_disk(err: BaseException) -> bool:
    """``err`` or an error in its chain (``raise ... from``, or raised while handling) is a full disk."""
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        if is_disk_full(cause):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


#: Free bytes below which a failed write is put down to a full disk: torch's zip writer reports ENOSPC
#: as "unexpected pos 704 vs 598", without the errno.
_NEARLY_FULL = 1 << 20


def _out_of_space(folder: Path) -> bool:
    """Whether the file system holding ``folder`` (or its nearest existing parent) has almost no room."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is None or not hasattr(os, "statvfs"):
        return False
    try:
        stat = os.statvfs(existing)
    except OSError:
        return False
    # pseudo file systems (/proc, /sys) report no blocks at all: not full, just not for files
    return stat.f_blocks > 0 and stat.f_bavail * stat.f_frsize < _NEARLY_FULL


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (NaN written as null)."""
    return write_text(path, to_json(obj) + "\n")


def to_json(obj: Any) -> str:
    """Serialise to strict JSON: numpy/torch scalars become numbers, NaN/inf become null."""
    return json.dumps(_plain(obj), indent=2, allow_nan=False)


def _plain(obj: Any) -> Any:
    import math

    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return _plain(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_csv(path: str | os.PathLike, frame: "Any") -> Path:
    """Write a pandas DataFrame (or list of dicts) as CSV atomically, without the index."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(list(frame))
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(path)


def save_figure(fig: "Any", path: str | os.PathLike, dpi: int = 120, *, format: str | None = None) -> Path:
    """Save a matplotlib figure atomically; a figure made through pyplot is closed (released) too.
    ``format``: the file format when ``path``'s own suffix does not say it (a staging name); default: the
    suffix, or PNG without one.

    maelens's plots build ``matplotlib.figure.Figure`` objects without pyplot, which need neither a
    backend nor closing; pyplot figures (a user's, or a notebook's) are handed back to pyplot."""
    target = Path(path)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=format or target.suffix.lstrip(".") or "png")
    close_if_pyplot(fig)
    return target


def close_if_pyplot(fig: "Any") -> None:
    """Release a figure made through pyplot (which keeps it alive until closed); others need nothing."""
    if getattr(getattr(fig, "canvas", None), "manager", None) is not None:
        import matplotlib.pyplot as plt

        plt.close(fig)


def save_npz(path: str | os.PathLike, **arrays: Any) -> Path:
    """Save arrays to a compressed ``.npz`` atomically (no pickled objects)."""
    import numpy as np

    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)
    return Path(path)


# ---- a command's outputs appear together ------------------------------------------------------------

#: Written into every folder :func:`output_folder` puts in place: ``overwrite`` replaces only such folders,
#: so that ``--out ~ --overwrite`` can never delete files maelens did not write.
OUTPUT_MARKER = ".maelens-output"
#: Staging (``.partial``) and replaced (``.old``) siblings of an output folder: ``.NAME.PID.RANDOM.KIND``.
_SIBLING = r"^\.{name}\.(\d+)\.[^.]+\.(partial|old)$"


def check_output_folder(path: str | os.PathLike, overwrite: bool = False, option: str = "out") -> None:
    """Refuse, before any work, an output folder that already holds files unless ``overwrite``, and an
    ``overwrite`` of a folder that no maelens command wrote (no :data:`OUTPUT_MARKER`). A missing or
    empty folder is always fine."""
    target = Path(path)
    if not target.is_dir() or not any(target.iterdir()):
        return
    if not overwrite:
        raise ConfigError(f"{option}={target}: already holds files; pass overwrite=True to replace that folder "
                          f"as a whole, or choose another {option}=FOLDER")
    if not (target / OUTPUT_MARKER).is_file():
        raise ConfigError(f"{option}={target}: overwrite=True replaces only a folder a maelens command wrote, and "
                          f"this one has no {OUTPUT_MARKER} file; remove it yourself or choose another {option}=FOLDER")


@contextmanager
def output_folder(path: str | os.PathLike, overwrite: bool = False, *, command: str = "maelens") -> Iterator[Path]:
    """Yield an empty staging folder beside ``path``; when the block succeeds it becomes ``path``, else
    it is removed: Ctrl-C, a crash or a full disk leave no partial outputs, and a re-run never mixes
    old and new files (fewer influence maps cannot keep stale ones).

    An existing ``path`` holding files is refused unless ``overwrite``, which replaces it as a whole
    (only a folder written by a maelens command: see :func:`check_output_folder`). A full disk in the
    block is one :class:`~maelens.errors.OutputError` naming the final path, not the staging one.
    """
    target = Path(path)
    if target.parent.is_dir():
        _remove_dead_siblings(target)
    check_output_folder(target, overwrite)
    with disk_full_names(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{staging_stem(target, _STAGING_EXTRA)}.{os.getpid()}.",
                                        suffix=".partial", dir=target.parent))
    try:
        try:
            yield staging
            write_text(staging / OUTPUT_MARKER, f"written by {command}\n")
        except OutputError as err:  # name the file where the user will look for it
            if isinstance(err.path, Path) and staging in err.path.parents:
                shown = target / err.path.relative_to(staging)
                raise OutputError(str(err).replace(str(err.path), str(shown)), shown) from err.__cause__
            raise
        with disk_full_names(target):
            os.chmod(staging, 0o777 & ~_umask())  # mkdtemp creates 0700
        _put_in_place(staging, target, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _put_in_place(staging: Path, target: Path, overwrite: bool) -> None:
    """Rename ``staging`` onto ``target``: directly when ``target`` is missing or empty; with
    ``overwrite``, the old folder is first renamed aside, then deleted."""
    old = None
    if overwrite and target.is_dir() and any(target.iterdir()):
        check_output_folder(target, overwrite)  # it may have changed since the command started
        old = Path(tempfile.mkdtemp(prefix=f".{staging_stem(target, _STAGING_EXTRA)}.{os.getpid()}.", suffix=".old",
                                    dir=target.parent))
        os.replace(target, old)  # onto the empty directory just made
    try:
        os.rename(staging, target)
    except OSError as err:
        if old is not None:
            os.replace(old, target)
        if err.errno == errno.ENOTDIR:
            raise OutputError(f"{target}: exists and is not a folder; nothing was written", target) from None
        if err.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise OutputError(f"{target}: another command wrote there while this one ran; nothing was written "
                              f"(pass overwrite=True to replace it, or choose another folder)", target) from None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _remove_dead_siblings(target: Path) -> None:
    """Delete the staging and replaced-folder siblings of ``target`` whose process is gone (killed
    before it could clean up; those of running processes are theirs). A replaced folder whose
    replacement never arrived (killed between the two renames) is put back instead."""
    pattern = re.compile(_SIBLING.format(name=re.escape(staging_stem(target, _STAGING_EXTRA))))
    for sibling in sorted(target.parent.iterdir()):
        match = pattern.match(sibling.name)
        if not match or not sibling.is_dir() or pid_alive(int(match.group(1))):
            continue
        if match.group(2) == "old" and not os.path.lexists(target):
            os.replace(sibling, target)
        else:
            shutil.rmtree(sibling, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (signal 0 probes without sending anything)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


# ---- one training run per folder ---------------------------------------------------------------------

#: The lock file of a run folder: held (``flock``) for a run's life, holding its pid.
LOCK_NAME = ".maelens.lock"


@contextmanager
def folder_lock(folder: str | os.PathLike, what: str = "training run") -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` for the block, so that two runs started into it at once
    cannot both write there; the second gets an :class:`~maelens.errors.OutputError` naming the folder
    and the holder's pid.

    ``flock`` on ``folder/.maelens.lock``: the kernel releases it when its process dies, so a lock file
    left by a killed run (its pid dead) is simply taken over. The folder is created if needed and
    removed again at the end if the block left it empty (a run refused at set-up writes nothing).
    On systems without ``fcntl`` the block runs unlocked.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield Path(folder) / LOCK_NAME
        return
    folder = Path(folder)
    created = not folder.exists()
    try:
        with disk_full_names(folder / LOCK_NAME):
            folder.mkdir(parents=True, exist_ok=True)
            fd = _acquire(fcntl, folder, what)
    except BaseException:
        if created:
            _remove_if_empty(folder)
        raise
    try:
        yield folder / LOCK_NAME
    finally:
        (folder / LOCK_NAME).unlink(missing_ok=True)  # still held: a waiting process re-checks the inode
        os.close(fd)
        if created:
            _remove_if_empty(folder)


def _lock_refusal(path: Path, err: OSError) -> str:
    """Why the lock file could not be opened, in words."""
    if os.path.isdir(path):
        return "a folder has that name; remove or rename it"
    if os.path.islink(path):
        return "a symbolic link has that name; remove it"
    return err.strerror or str(err)


def _remove_if_empty(folder: Path) -> None:
    """Remove ``folder`` if nothing is in it (a run refused at set-up); keep it otherwise."""
    try:
        folder.rmdir()
    except OSError:  # not empty: the run wrote its outputs
        pass


def _acquire(fcntl: Any, folder: Path, what: str) -> int:
    """The open, locked descriptor of ``folder``'s lock file, with this process's pid written in it."""
    path = folder / LOCK_NAME
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as err:  # the lock's name taken by a folder, a dangling link, a read-only folder
            raise OutputError(f"{folder}: cannot take the run's lock {path} ({_lock_refusal(path, err)})",
                              folder) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            if err.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            pid = f"pid {holder}" if holder.isdigit() else "pid not yet written"
            raise OutputError(f"{folder} is in use by another {what} ({pid}); wait for it to finish or "
                              f"choose another output folder", folder) from None
        try:  # the previous holder may have removed the file between our open and flock: lock the new one
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd

__all__ = ["LOCK_NAME", "OUTPUT_MARKER", "atomic_path", "check_output_folder", "close_if_pyplot",
    "disk_full_names", "folder_lock", "is_disk_full", "output_folder", "pid_alive", "save_figure", "save_npz",
    "to_json", "write_csv", "write_json", "write_text"]
