"""Video export in every format, frame conversion, and atomic writes."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import PIL.Image
import pytest
import torch
from av.video.reformatter import ColorRange, Colorspace

from svdlab.errors import InvalidParameterError, OutputError
from svdlab.media import VIDEO_FORMATS, atomic_path, frames_to_uint8, write_json_atomic, write_video
from svdlab.media import export as export_module

COLOURS = [(230, 30, 30), (30, 230, 30), (30, 30, 230), (230, 230, 30), (30, 230, 230), (200, 200, 200)]


def clip(width: int = 48, height: int = 32) -> np.ndarray:
    """(F, 3, H, W) float frames, each a different flat colour."""
    frames = np.empty((len(COLOURS), 3, height, width), np.float32)
    for index, colour in enumerate(COLOURS):
        frames[index] = (np.array(colour, np.float32) / 255)[:, None, None]
    return frames


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("."))


def decode(path: Path) -> tuple[av.video.stream.VideoStream, list[np.ndarray]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return stream, frames


# --- frames_to_uint8 ---


def test_frames_to_uint8_rounds_like_diffusers():
    values = torch.tensor([0.0, 0.5 / 255, 1.5 / 255, 0.5, 1.0, -0.2, 1.3, float("nan")])
    frames = values.reshape(1, 1, 1, 8).expand(2, 3, 1, 8)
    result = frames_to_uint8(frames)
    assert result.shape == (2, 1, 8, 3) and result.dtype == np.uint8
    expected = (values.clamp(0, 1).nan_to_num(0.0) * 255).round().to(torch.uint8).numpy()
    np.testing.assert_array_equal(result[1, 0, :, 2], expected)
    assert list(expected) == [0, 0, 2, 128, 255, 0, 255, 0]


def test_frames_to_uint8_layouts():
    frames = clip()
    from_array = frames_to_uint8(frames)
    np.testing.assert_array_equal(from_array[2, 5, 7], COLOURS[2])
    np.testing.assert_array_equal(frames_to_uint8(torch.from_numpy(frames).to(torch.float16)), from_array)
    np.testing.assert_array_equal(frames_to_uint8(from_array), from_array)
    np.testing.assert_array_equal(frames_to_uint8(torch.from_numpy(from_array)), from_array)
    with pytest.raises(ValueError, match="uint8 frames must be"):
        frames_to_uint8(np.zeros((2, 3, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="float"):
        frames_to_uint8(np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="non-empty"):
        frames_to_uint8(np.zeros((3, 8, 8), np.float32))


# --- formats ---


def test_formats():
    assert VIDEO_FORMATS == ("mp4", "webm", "gif", "webp", "png")


@pytest.mark.parametrize(("suffix", "codec"), [("mp4", "h264"), ("webm", "vp9")])
def test_browser_video_formats(tmp_path, suffix, codec):
    path = write_video(torch.from_numpy(clip()), tmp_path / f"clip.{suffix}", fps=7)
    assert path == tmp_path / f"clip.{suffix}"
    stream, frames = decode(path)
    assert stream.codec_context.name == codec
    assert stream.codec_context.pix_fmt == "yuv420p"
    assert stream.codec_context.colorspace == Colorspace.ITU709
    assert stream.codec_context.color_range == ColorRange.MPEG
    assert (stream.width, stream.height) == (48, 32)
    assert stream.average_rate == 7
    assert len(frames) == len(COLOURS)
    for frame, colour in zip(frames, COLOURS, strict=True):
        assert np.abs(frame[16, 24].astype(int) - colour).max() <= 3
    assert leftovers(tmp_path) == []


def test_mp4_is_faststart(tmp_path):
    path = write_video(clip(), tmp_path / "clip.mp4", fps=7)
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")


def test_mp4_with_odd_size_is_padded_by_edge_replication(tmp_path):
    frames = clip(width=47, height=33)
    frames[:, :, :, -1] = 1.0  # white last column, replicated into the padding
    stream, decoded = decode(write_video(frames, tmp_path / "odd.mp4", fps=8))
    assert (stream.width, stream.height) == (48, 34)
    assert len(decoded) == len(COLOURS)
    assert decoded[0][10, 47].min() >= 240


def test_webm_keeps_odd_size(tmp_path):
    stream, decoded = decode(write_video(clip(width=47, height=33), tmp_path / "odd.webm", fps=8))
    assert (stream.width, stream.height) == (47, 33)
    assert len(decoded) == len(COLOURS)


def test_fractional_fps(tmp_path):
    stream, decoded = decode(write_video(clip(), tmp_path / "ntsc.mp4", fps=30000 / 1001))
    assert stream.average_rate == Fraction(30000, 1001)
    assert len(decoded) == len(COLOURS)


def test_gif(tmp_path):
    path = write_video(clip(), tmp_path / "clip.gif", fps=7.5)
    with PIL.Image.open(path) as image:
        assert image.format == "GIF" and image.n_frames == len(COLOURS)
        assert image.info["loop"] == 0
        durations = []
        for index in range(image.n_frames):
            image.seek(index)
            durations.append(image.info["duration"])
            rgb = np.asarray(image.convert("RGB"))
            assert np.abs(rgb[16, 24].astype(int) - COLOURS[index]).max() <= 8
    assert durations == [130, 140, 130, 130, 140, 130]  # 133.3 ms on average, on GIF's 10 ms grid


def test_webp(tmp_path):
    path = write_video(clip(), tmp_path / "clip.webp", fps=8)
    with PIL.Image.open(path) as image:
        assert image.format == "WEBP" and image.n_frames == len(COLOURS)
        assert image.info["loop"] == 0
        for index, colour in enumerate(COLOURS):
            image.seek(index)
            rgb = np.asarray(image.convert("RGB"))
            assert image.info["duration"] == 125
            assert np.abs(rgb[16, 24].astype(int) - colour).max() <= 8


def test_png_folder(tmp_path):
    frames = clip()
    target = write_video(frames, tmp_path / "out" / "clip_frames", fps=7, format="png")
    assert target.is_dir()
    names = sorted(path.name for path in target.iterdir())
    assert names == [f"frame_{index:04d}.png" for index in range(len(COLOURS))]
    expected = frames_to_uint8(frames)
    for index, name in enumerate(names):
        with PIL.Image.open(target / name) as image:
            assert image.mode == "RGB"
            np.testing.assert_array_equal(np.asarray(image), expected[index])
    assert leftovers(tmp_path / "out") == []


def test_png_folder_replaces_an_existing_folder(tmp_path):
    target = tmp_path / "clip_frames"
    target.mkdir()
    (target / "frame_0099.png").write_bytes(b"old")
    write_video(clip()[:2], target, fps=7, format="png")
    assert sorted(path.name for path in target.iterdir()) == ["frame_0000.png", "frame_0001.png"]
    assert leftovers(tmp_path) == []


def test_format_errors(tmp_path):
    with pytest.raises(InvalidParameterError, match=r"format='avi' is not allowed: choose one of mp4, webm"):
        write_video(clip(), tmp_path / "clip.avi", fps=7, format="avi")
    with pytest.raises(InvalidParameterError, match=r"clip\.mov: cannot tell the format from the name"):
        write_video(clip(), tmp_path / "clip.mov", fps=7)
    with pytest.raises(InvalidParameterError, match=r"fps=0 is not allowed"):
        write_video(clip(), tmp_path / "clip.mp4", fps=0)
    assert list(tmp_path.iterdir()) == []


def test_format_argument_overrides_the_suffix(tmp_path):
    stream, _ = decode(write_video(clip(), tmp_path / "clip.bin", fps=7, format="WEBM"))
    assert stream.codec_context.name == "vp9"


# --- atomic writes ---


@pytest.mark.parametrize("format", VIDEO_FORMATS)
def test_failure_while_encoding_leaves_nothing_behind(tmp_path, monkeypatch, format):
    target = tmp_path / ("clip_frames" if format == "png" else f"clip.{format}")
    target.write_bytes(b"previous video")
    real = export_module.WRITERS[format]

    def encode_then_fail(pixels, path, rate):
        real(pixels, path, rate)
        assert path.exists() and path != target
        raise RuntimeError("encoder crashed")

    monkeypatch.setitem(export_module.WRITERS, format, encode_then_fail)
    with pytest.raises(RuntimeError, match="encoder crashed"):
        write_video(clip(), target, fps=7, format=format)
    assert target.read_bytes() == b"previous video"
    assert leftovers(tmp_path) == []


def test_failure_in_png_folder_leaves_nothing_behind(tmp_path, monkeypatch):
    calls = []

    def save_some(image, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        Path(path).write_bytes(b"partial")

    monkeypatch.setattr(PIL.Image.Image, "save", save_some)
    with pytest.raises(KeyboardInterrupt):
        write_video(clip(), tmp_path / "clip_frames", fps=7, format="png")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_is_an_svdlab_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=r"cannot write .*; a file is in the way of a folder"):
        write_video(clip(), tmp_path / "file" / "clip.mp4", fps=7)


def test_atomic_path_replaces_an_existing_file(tmp_path):
    target = tmp_path / "sub" / "result.txt"
    target.parent.mkdir()
    target.write_text("old")
    with atomic_path(target) as temp:
        assert temp.parent == target.parent and temp.suffix == ".txt" and temp.name.startswith(".result.tmp-")
        temp.write_text("new")
        assert target.read_text() == "old"
    assert target.read_text() == "new"
    assert leftovers(target.parent) == []


def test_atomic_path_creates_parents_and_cleans_up_on_error(tmp_path):
    target = tmp_path / "a" / "b" / "result.txt"
    with pytest.raises(ValueError, match="boom"), atomic_path(target) as temp:
        temp.write_text("half")
        raise ValueError("boom")
    assert not target.exists()
    assert list((tmp_path / "a" / "b").iterdir()) == []


def test_write_json_atomic(tmp_path):
    path = write_json_atomic(tmp_path / "m" / "manifest.json", {"zeta": 1, "alpha": ["é", 2.5]})
    text = path.read_text(encoding="utf-8")
    assert text == '{\n  "zeta": 1,\n  "alpha": [\n    "é",\n    2.5\n  ]\n}\n'
    assert json.loads(text) == {"zeta": 1, "alpha": ["é", 2.5]}
    with pytest.raises(TypeError):
        write_json_atomic(path, {"bad": object()})
    assert json.loads(path.read_text(encoding="utf-8"))["zeta"] == 1
    assert leftovers(path.parent) == []
