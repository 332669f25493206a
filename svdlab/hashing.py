"""SHA-256 of files, read in chunks so that large checkpoints and videos never sit in memory whole."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 2**24


def update_from_file(digest, path: str | Path) -> None:
    """Feed a file's bytes into a hashlib digest, chunk by chunk."""
    with Path(path).open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    update_from_file(digest, path)
    return digest.hexdigest()
