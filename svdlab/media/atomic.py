"""Atomic writes: build a file or folder under a hidden temporary name, then rename it into place.

This is the one way svdlab writes its outputs, so its failures read the same everywhere: any OSError
becomes an OutputError naming the file and the cause (disk full, read-only, permissions, something in
the way). A temporary name carries the writer's process id, so a later run can tell the leftovers of a
killed writer (`remove_stale_temps`) from files another live process is still writing.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from svdlab.errors import OutputError

TEMP_NAME = re.compile(r"^\..*\.(tmp|old)-(\d+)-[0-9a-f]{8}")
FULL_DISK = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))  # a quota that is used up
ADVICE = {
    errno.EROFS: "the file system is read-only; choose a writable output folder",
    errno.EACCES: "choose a writable output folder or fix its permissions",
    errno.EPERM: "choose a writable output folder or fix its permissions",
    errno.EISDIR: "a folder is in the way; move it or choose another output folder",
    errno.ENOTEMPTY: "a folder is in the way; move it or choose another output folder",
    errno.ENOTDIR: "a file is in the way of a folder; move it or choose another output folder",
    errno.EEXIST: "a file is in the way of a folder; move it or choose another output folder",
}


def remove_path(path: Path) -> None:
    """Remove a file or a folder with its files; nothing if it is not there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    if os.name == "posix":
        _fsync(path)


def _flush(path: Path) -> None:
    """Flush a file, or a folder's files and the folder itself, to disk."""
    if not path.is_dir():
        _fsync(path)
        return
    for child in path.iterdir():
        if child.is_file():
            _fsync(child)
    _fsync_dir(path)


def _hidden_sibling(target: Path, tag: str) -> Path:
    return target.with_name(f".{target.stem}.{tag}-{os.getpid()}-{secrets.token_hex(4)}{target.suffix}")


def write_error(target: Path, error: OSError) -> OutputError:
    """The one-line OutputError for a failed write of `target`: where, why, and what to do."""
    detail = error.strerror or " ".join(str(error).split()) or type(error).__name__
    if error.errno in FULL_DISK:
        return OutputError(
            f"cannot write {target}: the disk is full ({detail}); free space and run the same command "
            "again (finished work is kept)"
        )
    advice = ADVICE.get(error.errno or 0, "check the output folder and its free space")
    return OutputError(f"cannot write {target} ({detail}); {advice}")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path to write a file or folder to; move it onto `path` on success.

    Any OSError on the way (in the caller's block too) is raised as an OutputError naming `path`.
    """
    target = Path(path)
    try:
        with _replacing(target) as temp:
            yield temp
    except OSError as error:
        raise write_error(target, error) from error


@contextmanager
def _replacing(target: Path) -> Iterator[Path]:
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = _hidden_sibling(target, "tmp")
    try:
        yield temp
        _flush(temp)
        if temp.is_dir() and target.exists():
            old = _hidden_sibling(target, "old")
            os.replace(target, old)
            try:
                os.replace(temp, target)
            except BaseException:
                os.replace(old, target)
                raise
            remove_path(old)
        else:
            os.replace(temp, target)
    except BaseException:
        remove_path(temp)
        raise
    _fsync_dir(target.parent)


def check_writable(folder: str | os.PathLike) -> Path:
    """Prove that a file can be written in `folder` (an OutputError says why not); leave no trace."""
    folder = Path(folder)
    created = [path for path in (folder, *folder.parents) if not path.exists()]  # deepest first
    probe = _hidden_sibling(folder / "write-check", "tmp")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise write_error(folder, error) from error
    finally:
        for path in created:
            with contextlib.suppress(OSError):
                path.rmdir()
    return folder


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files and folders under `folder` that killed writers left; return them.

    A temp whose writer (the process id in its name) still runs is left alone.
    """
    stale = []
    for path in Path(folder).rglob(".*"):
        match = TEMP_NAME.match(path.name)
        if match and not _running(int(match.group(2))) and path.exists():
            remove_path(path)
            stale.append(path)
    return stale


def _running(pid: int) -> bool:
    """Whether a process with this id runs (ours counts as running)."""
    return pid == os.getpid() or psutil.pid_exists(pid)


def write_json_atomic(path: str | os.PathLike, data: dict) -> Path:
    """Write `data` as indented UTF-8 JSON with a trailing newline, atomically; return the path."""
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    target = Path(path)
    with atomic_path(target) as temp:
        temp.write_text(text, encoding="utf-8")
    return target
