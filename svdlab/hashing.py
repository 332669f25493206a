"""SHA-256 of files, read in chunks so that large checkpoints and videos never sit in memory whole, and of
networks' weights."""

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


def networks_sha256(networks: dict) -> str:
    """SHA-256 over named networks' tensors (as float32, in name order): the identity of built weights."""
    import torch

    digest = hashlib.sha256()
    for part, network in networks.items():
        for key, tensor in sorted(network.state_dict().items()):
            digest.update(f"{part}.{key}".encode())
            digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()
