"""Input videos: every frame of a video file as RGB, with its frame rate (PyAV)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from svdlab.errors import InvalidVideoError
from svdlab.media.images import default_max_pixels

MAX_FRAMES = 10_000


def read_video(
    path: str | os.PathLike, max_frames: int = MAX_FRAMES, max_pixels: int | None = None
) -> tuple[np.ndarray, float]:
    """A video file's frames (F, H, W, 3) uint8 RGB and its frame rate; InvalidVideoError says what is
    wrong in one line."""
    import av

    path = Path(path)
    if not path.is_file():
        what = "is a folder; pass a video file" if path.is_dir() else "no such file; check the path"
        raise InvalidVideoError(f"{path}: {what}")
    max_pixels = max_pixels or default_max_pixels()
    frames = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InvalidVideoError(f"{path}: has no video stream; pass a video file")
            stream = container.streams.video[0]
            if stream.width * stream.height > max_pixels:
                raise InvalidVideoError(
                    f"{path}: {stream.width}x{stream.height} frames are over {max_pixels} pixels; "
                    "downscale the video first"
                )
            rate = stream.average_rate or stream.guessed_rate
            for frame in container.decode(stream):
                if len(frames) == max_frames:
                    raise InvalidVideoError(f"{path}: more than {max_frames} frames; cut the video first")
                frames.append(frame.to_ndarray(format="rgb24"))
    except (av.FFmpegError, OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or " ".join(str(error).split())
        raise InvalidVideoError(f"{path}: cannot decode it ({reason}); pass an mp4, webm or gif") from None
    if not frames:
        raise InvalidVideoError(f"{path}: holds no frames; pass a video with at least one")
    if not rate:
        raise InvalidVideoError(f"{path}: has no frame rate; re-encode it with one")
    return np.stack(frames), float(rate)
