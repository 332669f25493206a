"""Weight-free frame interpolation: measured against the true frames it replaces, and the command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from benchmarks.interpolation import held_out_clips, scores
from svdlab.cli import app
from svdlab.media import write_video
from svdlab.media.videos import read_video
from svdlab.post import interpolate_frames
from tests.synthetic_videos import moving_square, pan


@pytest.mark.parametrize("factor", [2, 4])
def test_flow_beats_blending_on_clips_with_known_in_between_frames(factor):
    clips = [pan(2, frames=9), pan(1, 1, frames=9, seed=4), moving_square(2, frames=9)]
    for clip in clips:
        flow, blend = (scores([clip], factor, method) for method in ("flow", "blend"))
        assert flow["psnr"] > blend["psnr"] + 3 and flow["ssim"] > blend["ssim"]
    sprites = held_out_clips(6)  # seeds no training run uses
    flow, blend = scores(sprites, factor, "flow"), scores(sprites, factor, "blend")
    assert flow["ssim"] > blend["ssim"] + 0.03
    if factor == 2:  # at 4x the sprites move up to ~20 px between kept frames: PSNR is level there
        assert flow["psnr"] > blend["psnr"] + 2


def test_kept_frames_pass_through_and_the_count_is_right():
    clip = moving_square(3, 1, frames=5)
    for factor in (1, 2, 4):
        for method in ("flow", "blend"):
            made = interpolate_frames(clip, factor, method)
            assert made.shape == ((len(clip) - 1) * factor + 1, *clip.shape[1:]) and made.dtype == np.uint8
            assert np.array_equal(made[::factor], clip)
    still = np.repeat(clip[:1], 3, axis=0)
    assert np.array_equal(interpolate_frames(still, 4, "flow"), np.repeat(clip[:1], 9, axis=0))
    with pytest.raises(ValueError, match="method"):
        interpolate_frames(clip, 2, "magic")


def test_the_interpolate_command_writes_the_video_and_its_manifest(tmp_path):
    source = write_video(pan(2, frames=6), tmp_path / "clip.mp4", fps=8, format="mp4")
    runner = CliRunner()
    result = runner.invoke(app, ["interpolate", str(source), "--factor", "4", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    made = tmp_path / "out" / "clip-x4-flow.mp4"
    frames, fps = read_video(made)
    assert frames.shape[0] == 21 and fps == 32
    original, _ = read_video(source)
    kept_error = np.abs(frames[::4].astype(int) - original).mean()  # the kept frames, through one more encode
    assert kept_error < 8 and np.abs(frames[::4].astype(int) - original[::-1]).mean() > 5 * kept_error
    manifest = json.loads((tmp_path / "out" / "clip-x4-flow.json").read_text())
    assert manifest["made_by"] == {"operation": "interpolate", "method": "flow", "factor": 4}
    assert manifest["input"]["frames"] == 6 and manifest["input"]["fps"] == 8
    assert manifest["output"] == {
        "file": made.name,
        "format": "mp4",
        "frames": 21,
        "fps": 32,
        "width": 128,
        "height": 96,
    }

    blend = runner.invoke(
        app,
        ["interpolate", str(source), "--method", "blend", "--format", "gif", "--out", str(tmp_path / "out")],
    )
    assert blend.exit_code == 0 and (tmp_path / "out" / "clip-x2-blend.gif").is_file()


def test_the_interpolate_command_refuses_bad_input_in_one_line(tmp_path):
    source = write_video(pan(2, frames=4), tmp_path / "clip.mp4", fps=8, format="mp4")
    single = write_video(pan(2, frames=1), tmp_path / "single.mp4", fps=8, format="mp4")
    (tmp_path / "notes.mp4").write_text("not a video")
    out = tmp_path / "out"
    other = tmp_path / "other" / "clip.mp4"
    other.parent.mkdir()
    write_video(pan(3, frames=4, seed=7), other, fps=8, format="mp4")
    runner = CliRunner()
    assert runner.invoke(app, ["interpolate", str(source), "--out", str(out)]).exit_code == 0
    before = (out / "clip-x2-flow.mp4").read_bytes()
    cases = [
        ([str(source), "--factor", "3"], "--factor 3"),
        ([str(source), "--method", "magic"], "--method magic"),
        ([str(source), "--format", "avi"], "--format avi"),
        ([str(tmp_path / "missing.mp4")], "no such file"),
        ([str(tmp_path)], "is a folder"),
        ([str(tmp_path / "notes.mp4")], "cannot decode"),
        ([str(single)], "needs at least 2"),
        ([str(other), "--out", str(out)], "made from another video"),
    ]
    for arguments, expected in cases:
        result = runner.invoke(app, ["interpolate", *arguments])
        assert result.exit_code == 2, (arguments, result.output)
        assert expected in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert (out / "clip-x2-flow.mp4").read_bytes() == before  # the other video's name clash wrote nothing
    replaced = runner.invoke(app, ["interpolate", str(other), "--out", str(out), "--overwrite"])
    assert replaced.exit_code == 0 and (out / "clip-x2-flow.mp4").read_bytes() != before
