"""Atomic writes: build a file or folder under a hidden temporary name, then rename it into place."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _remove(path: Path) -> None:
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
    return target.with_name(f".{target.stem}.{tag}-{secrets.token_hex(4)}{target.suffix}")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path to write a file or folder to; move it onto `path` on success."""
    target = Path(path)
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
            _remove(old)
        else:
            os.replace(temp, target)
    except BaseException:
        _remove(temp)
        raise
    _fsync_dir(target.parent)


def write_json_atomic(path: str | os.PathLike, data: dict) -> Path:
    """Write `data` as indented UTF-8 JSON with a trailing newline, atomically; return the path."""
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    target = Path(path)
    with atomic_path(target) as temp:
        temp.write_text(text, encoding="utf-8")
    return target
