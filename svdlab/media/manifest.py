"""Manifests: the JSON written beside each video with everything needed to reproduce it."""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from importlib import metadata

PACKAGES = ("svdlab", "diffusers", "transformers", "torch", "accelerate")


def versions() -> dict[str, str]:
    """Versions of Python and the packages that shape the output."""
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def build_manifest(model, params, image: dict, timings: dict, output: dict) -> dict:
    """The manifest of one video: model identity, every parameter, input, versions, timings, output."""
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": model.describe(),
        "params": params.model_dump(),
        "memory": dict(model.memory),
        "image": image,
        "versions": versions(),
        "timings": {key: round(value, 4) for key, value in timings.items()},
        "output": output,
    }
