"""Writing what a post-processing step made from a video: the new video with a manifest that names the
operation, its method and the input file, never replacing another input's result unasked."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from svdlab.errors import OutputError
from svdlab.hashing import file_sha256
from svdlab.media import source_stem
from svdlab.media.atomic import check_writable
from svdlab.media.manifest import manifest_path, save_video, versions, video_path
from svdlab.timestamps import utc_now


@dataclass
class PostVideo:
    """A video a post-processing step wrote, and its manifest."""

    path: Path
    manifest: dict


def input_info(source: Path, frames: np.ndarray, fps: float) -> dict:
    """The manifest's description of an input video: its file, hash, length, rate and size."""
    return {
        "file": str(source),
        "sha256": file_sha256(source),
        "frames": len(frames),
        "fps": fps,
        "width": frames.shape[2],
        "height": frames.shape[1],
    }


def post_target(
    source: Path, suffix: str, out: str | Path, format: str, made_from: dict, overwrite: bool
) -> Path:
    """Where the result of `source` goes (its stem and `suffix`), checked before any work: the folder is
    writable and no other input's result is there (unless `overwrite`)."""
    check_writable(out)
    target = video_path(Path(out), f"{source_stem(source)}-{suffix}", format)
    if overwrite or not target.exists():
        return target
    try:
        previous = json.loads(manifest_path(target).read_text(encoding="utf-8"))["input"]["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        previous = None
    if previous != made_from["sha256"]:
        raise OutputError(
            f"{target} exists and was made from another video; pass --overwrite or another --out"
        )
    return target


def write_post_video(
    frames: np.ndarray,
    fps: float,
    format: str,
    target: Path,
    made_by: dict,
    made_from: dict,
    extra: dict | None = None,
) -> PostVideo:
    """Save the frames with a manifest naming the operation (`made_by`) and the input (`made_from`)."""
    manifest = {
        "created": utc_now(),
        "made_by": made_by,
        **(extra or {}),
        "input": made_from,
        "output": {
            "file": target.name,
            "format": format,
            "frames": len(frames),
            "fps": fps,
            "width": frames.shape[2],
            "height": frames.shape[1],
        },
        "versions": versions(),
    }
    return PostVideo(save_video(frames, fps, format, target, manifest), manifest)
