"""Video export: frames to MP4 (H.264), WebM (VP9), GIF, animated WebP or a folder of PNGs, atomically.

MP4 and WebM are 8-bit yuv420p tagged BT.709 (limited range), so browsers play them with true colours.
yuv420p needs an even width and height: H.264 frames with an odd side get one more row or column that
repeats the edge pixels (the video is then one pixel wider or taller than the frames). GIF stores
durations in 10 ms steps and browsers slow frames under 20 ms, so GIF frames last at least 20 ms;
all GIF frames share one palette (Floyd-Steinberg dithered). PNG frames use fast zlib level 1.
"""

from __future__ import annotations

import math
import numbers
import os
import sys
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import PIL.Image

from svdlab.errors import InvalidParameterError
from svdlab.media.atomic import atomic_path

if TYPE_CHECKING:
    import torch

VIDEO_FORMATS = ("mp4", "webm", "gif", "webp", "png")
MP4_OPTIONS = {"crf": "18", "preset": "medium"}
WEBM_OPTIONS = {"crf": "24", "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"}
WEBP_QUALITY = 90
GIF_SHORTEST_MS = 20
PALETTE_SAMPLE = 2**20
PNG_COMPRESS_LEVEL = 1


def frames_to_uint8(frames: np.ndarray | torch.Tensor) -> np.ndarray:
    """(F, H, W, 3) uint8 frames from (F, 3, H, W) floats in [0, 1] or (F, H, W, 3) uint8, tensor or array."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu()
        frames = (frames if frames.dtype == torch.uint8 else frames.float()).numpy()
    array = np.asarray(frames)
    if array.ndim != 4 or len(array) == 0:
        raise ValueError(f"frames must be a non-empty (F, 3, H, W) or (F, H, W, 3) batch, got {array.shape}")
    if array.dtype == np.uint8:
        if array.shape[3] != 3:
            raise ValueError(f"uint8 frames must be (F, H, W, 3), got {array.shape}")
        return np.ascontiguousarray(array)
    if not np.issubdtype(array.dtype, np.floating) or array.shape[1] != 3:
        raise ValueError(
            f"frames must be float (F, 3, H, W) in [0, 1] or uint8 (F, H, W, 3), got "
            f"{array.dtype} {array.shape}"
        )
    unit = np.clip(np.nan_to_num(array.astype(np.float32), nan=0.0), 0.0, 1.0)
    return np.ascontiguousarray(np.round(unit * np.float32(255)).astype(np.uint8).transpose(0, 2, 3, 1))


def write_video(
    frames: np.ndarray | torch.Tensor, path: str | os.PathLike, fps: float, format: str | None = None
) -> Path:
    """Write frames as a video file (or a PNG folder) in `format`, by default the path's suffix."""
    target = Path(path)
    chosen = (format or target.suffix.removeprefix(".")).lower()
    allowed = ", ".join(VIDEO_FORMATS)
    if format is None and chosen not in VIDEO_FORMATS:
        raise InvalidParameterError(f"{target}: cannot tell the format from the name; pass one of {allowed}")
    if chosen not in VIDEO_FORMATS:
        raise InvalidParameterError(f"format={format!r} is not allowed: choose one of {allowed}")
    if not (isinstance(fps, numbers.Real) and math.isfinite(fps) and fps > 0):
        raise InvalidParameterError(f"fps={fps!r} is not allowed: use a frame rate above 0")
    rate = (fps if isinstance(fps, Fraction) else Fraction(float(fps))).limit_denominator(1001)
    pixels = frames_to_uint8(frames)
    with atomic_path(target) as temp:
        WRITERS[chosen](pixels, temp, rate)
    return target


def encode_video(frames: np.ndarray | torch.Tensor, fps: float, format: str) -> dict[str, bytes]:
    """A video as bytes, as `write_video` would write it: {"": file} for a file, {name: frame} for PNGs."""
    with tempfile.TemporaryDirectory() as folder:
        path = write_video(frames, Path(folder) / f"video.{format}", fps=fps, format=format)
        if path.is_dir():
            return {frame.name: frame.read_bytes() for frame in sorted(path.iterdir())}
        return {"": path.read_bytes()}


def write_encoded(files: dict[str, bytes], path: str | os.PathLike) -> Path:
    """Write what `encode_video` made to `path` (a file, or a folder of frames), atomically."""
    target = Path(path)
    with atomic_path(target) as temp:
        if set(files) == {""}:
            temp.write_bytes(files[""])
        else:
            temp.mkdir()
            for name, data in files.items():
                (temp / Path(name).name).write_bytes(data)
    return target


def _pad_even(pixels: np.ndarray) -> np.ndarray:
    _, height, width, _ = pixels.shape
    if height % 2 == 0 and width % 2 == 0:
        return pixels
    return np.pad(pixels, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")


def _write_av(
    pixels: np.ndarray,
    path: Path,
    rate: Fraction,
    container: str,
    codec: str,
    options: dict,
    container_options: dict,
) -> None:
    """Encode frames with PyAV as 8-bit yuv420p BT.709 (limited range)."""
    import av
    from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc

    with av.open(str(path), mode="w", format=container, options=container_options) as output:
        stream = output.add_stream(codec, rate=rate, options=options)
        stream.width, stream.height = pixels.shape[2], pixels.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = 1 / rate
        stream.codec_context.colorspace = Colorspace.ITU709
        stream.codec_context.color_primaries = ColorPrimaries.BT709
        stream.codec_context.color_trc = ColorTrc.BT709
        stream.codec_context.color_range = ColorRange.MPEG
        for index, frame in enumerate(pixels):
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(
                format="yuv420p", dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG
            )
            video_frame.pts = index
            video_frame.time_base = stream.codec_context.time_base
            output.mux(stream.encode(video_frame))
        output.mux(stream.encode(None))


def _write_mp4(pixels: np.ndarray, path: Path, rate: Fraction) -> None:
    _write_av(_pad_even(pixels), path, rate, "mp4", "libx264", MP4_OPTIONS, {"movflags": "+faststart"})


def _write_webm(pixels: np.ndarray, path: Path, rate: Fraction) -> None:
    _write_av(pixels, path, rate, "webm", "libvpx-vp9", WEBM_OPTIONS, {})


def _durations(count: int, rate: Fraction, tick_ms: int, shortest_ms: int) -> list[int]:
    """Per-frame durations in ms on a `tick_ms` grid whose running sum tracks the exact frame times."""
    ends = [round((index + 1) * 1000 / rate / tick_ms) * tick_ms for index in range(count)]
    return [max(shortest_ms, end - start) for start, end in zip([0, *ends[:-1]], ends, strict=True)]


def _shared_palette(pixels: np.ndarray) -> PIL.Image.Image:
    """One 256-colour palette for every frame (no palette flicker), from about a million sampled pixels."""
    step = max(1, math.ceil(math.sqrt(pixels[..., 0].size / PALETTE_SAMPLE)))
    sample = pixels[:, ::step, ::step]
    mosaic = PIL.Image.fromarray(np.ascontiguousarray(sample.reshape(-1, sample.shape[2], 3)))
    return mosaic.quantize(256, method=PIL.Image.Quantize.MEDIANCUT)


def _write_gif(pixels: np.ndarray, path: Path, rate: Fraction) -> None:
    palette = _shared_palette(pixels)
    images = [PIL.Image.fromarray(frame).quantize(palette=palette) for frame in pixels]
    images[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=_durations(len(images), rate, 10, GIF_SHORTEST_MS),
        loop=0,
    )


def _write_webp(pixels: np.ndarray, path: Path, rate: Fraction) -> None:
    images = [PIL.Image.fromarray(frame) for frame in pixels]
    images[0].save(
        path,
        format="WEBP",
        save_all=True,
        append_images=images[1:],
        duration=_durations(len(images), rate, 1, 1),
        loop=0,
        quality=WEBP_QUALITY,
    )


def _write_png(pixels: np.ndarray, path: Path, rate: Fraction) -> None:
    path.mkdir()
    digits = max(4, len(str(len(pixels) - 1)))
    for index, frame in enumerate(pixels):
        name = f"frame_{index:0{digits}d}.png"
        PIL.Image.fromarray(frame).save(path / name, compress_level=PNG_COMPRESS_LEVEL)


WRITERS = {"mp4": _write_mp4, "webm": _write_webm, "gif": _write_gif, "webp": _write_webp, "png": _write_png}
