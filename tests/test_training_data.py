"""Training data: synthetic sprite videos with known motion, labels, prepare-data and the clip reader."""

from __future__ import annotations

import hashlib
import json
import math

import av
import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from svdlab.cli import app
from svdlab.errors import InvalidParameterError
from svdlab.metrics.motion import motion_score
from svdlab.training.dataset import ClipDataset, find_videos, prepare_dataset, read_index, relabel
from svdlab.training.labels import MotionCalibration, fps_label, stride_for_fps
from svdlab.training.synthetic import (
    SceneRanges,
    render_sprite_clip,
    write_lossless_mp4,
    write_synthetic_videos,
)

WIDTH, HEIGHT = 64, 48
SOURCE_FPS = 24
RELATIVE_PANS = (0.0, 0.003, 0.007, 0.012, 0.02)  # of the width per frame; below saturation at stride 2


def decode(path) -> np.ndarray:
    """All frames of a video as (T, H, W, 3) uint8."""
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def ranks(values) -> np.ndarray:
    """Ranks 0..n-1 of the values (no ties expected)."""
    return np.argsort(np.argsort(values))


@pytest.fixture(scope="module")
def pan_videos(tmp_path_factory):
    """Five 16-frame videos panning at RELATIVE_PANS of the width per frame, plus their rendered frames."""
    folder = tmp_path_factory.mktemp("pans")
    rendered = {}
    for index, relative in enumerate(RELATIVE_PANS):
        clip = render_sprite_clip(
            index, width=WIDTH, height=HEIGHT, frames=16, pan=(relative * WIDTH, 0.0), speed=0.0, sprites=2
        )
        path = write_lossless_mp4(clip.frames, folder / f"pan{index}.mp4", SOURCE_FPS)
        rendered[str(path)] = clip.frames
    return folder, rendered


@pytest.fixture(scope="module")
def pan_dataset(pan_videos, tmp_path_factory):
    """The pan videos prepared at strides 1 and 2 with the default calibration."""
    folder, _ = pan_videos
    out = tmp_path_factory.mktemp("pan_dataset") / "data"
    return prepare_dataset(folder, out, width=WIDTH, height=HEIGHT, frames=6, strides=[1, 2])


def test_true_motion_is_the_requested_pan_and_speed():
    panned = render_sprite_clip(1, width=WIDTH, height=HEIGHT, frames=5, pan=(1.5, -2.0), speed=0.0)
    assert panned.true_motion == pytest.approx(2.5)  # sprites still on the background move with the pan
    assert panned.pan == (1.5, -2.0) and all(speed == 0 for speed in panned.speeds)
    moving = render_sprite_clip(
        2, width=WIDTH, height=HEIGHT, frames=5, speed=3.0, direction=90, sprites=3, pan=(0, 0)
    )
    assert moving.speeds == [3.0] * 3 and moving.directions == [90.0] * 3
    assert 0.1 < moving.true_motion < 3.0  # only the pixels the sprites cover move
    both = render_sprite_clip(
        2, width=WIDTH, height=HEIGHT, frames=5, speed=3.0, direction=0, sprites=3, pan=(1.0, 0.0)
    )
    assert 1.0 < both.true_motion < 4.0  # background at 1 px/frame, sprites at 3 + 1
    empty = render_sprite_clip(3, width=WIDTH, height=HEIGHT, frames=4, sprites=0, pan=(0.0, 0.0))
    assert empty.true_motion == 0 and empty.frames.shape == (4, HEIGHT, WIDTH, 3)
    assert np.array_equal(empty.frames[0], empty.frames[-1])


def test_motion_score_tracks_true_motion():
    for speed in (0.5, 1.0, 2.5):
        clip = render_sprite_clip(4, width=WIDTH, height=HEIGHT, frames=6, pan=(speed, speed / 2), speed=0.0)
        assert motion_score(clip.frames) == pytest.approx(clip.true_motion, rel=0.1)
    scenes = [render_sprite_clip(seed, width=WIDTH, height=HEIGHT, frames=6) for seed in range(24)]
    truth = np.array([scene.true_motion for scene in scenes])
    measured = np.array([motion_score(scene.frames) for scene in scenes])
    assert truth.max() > 1.0 and truth.min() < 0.1  # random scenes span still to fast
    rank_correlation = np.corrcoef(ranks(truth + np.arange(24) * 1e-9), ranks(measured))[0, 1]
    assert rank_correlation > 0.8


def test_sub_pixel_pans_move_every_frame():
    clip = render_sprite_clip(5, width=WIDTH, height=HEIGHT, frames=6, pan=(0.25, 0.0), speed=0.0)
    steps = [np.abs(a.astype(int) - b).mean() for a, b in zip(clip.frames, clip.frames[1:])]
    assert min(steps) > 0.5  # no frame repeats: a quarter pixel per frame still shows
    assert motion_score(clip.frames) == pytest.approx(0.25, rel=0.25)


def test_scenes_are_deterministic_per_seed_and_varied():
    first, again = render_sprite_clip(7, frames=4), render_sprite_clip(7, frames=4)
    assert np.array_equal(first.frames, again.frames) and first.truth() == again.truth()
    others = [render_sprite_clip(seed, frames=4) for seed in range(8, 20)]
    assert not any(np.array_equal(first.frames, other.frames) for other in others)
    counts = {len(clip.speeds) for clip in [first, *others]}
    shapes = {shape for clip in [first, *others] for shape in clip.shapes}
    assert counts <= {1, 2, 3, 4} and len(counts) >= 3 and len(shapes) >= 4


def test_synthetic_videos_decode_to_the_rendered_frames(tmp_path):
    records = write_synthetic_videos(tmp_path, 2, width=40, height=30, frames=5, fps=12, seed=3)
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert truth["videos"] == records and [r["file"] for r in records] == ["synth_0000.mp4", "synth_0001.mp4"]
    for index, record in enumerate(records):
        clip = render_sprite_clip(3 + index, width=40, height=30, frames=5, fps=12)
        assert record["seed"] == 3 + index and record["true_motion"] == pytest.approx(clip.true_motion)
        assert record["fps"] == 12 and len(record["speeds"]) == len(record["directions"])
        assert np.array_equal(decode(tmp_path / record["file"]), clip.frames)  # lossless
    assert not list(tmp_path.glob(".*"))


def test_default_calibration_follows_its_documented_curve():
    default = MotionCalibration.default()
    assert default.bucket(0.0, 64) == 0
    assert default.bucket(0.005 * 64, 64) == 40 and default.bucket(0.02 * 64, 64) == 140
    assert default.bucket(0.05 * 1024, 1024) == 255 and default.bucket(0.3 * 1024, 1024) == 255
    for relative in (0.001, 0.01, 0.03):  # the same relative motion gets the same bucket at any width
        assert default.bucket(relative * 64, 64) == default.bucket(relative * 1024, 1024)
    buckets = [default.bucket(score, 100) for score in np.linspace(0, 6, 50)]
    assert buckets == sorted(buckets)


def test_calibration_round_trips_and_refuses_bad_knots(tmp_path):
    calibration = MotionCalibration((0.0, 0.01, 0.1), (0.0, 100.0, 255.0), source="mine")
    assert MotionCalibration.from_dict(json.loads(json.dumps(calibration.to_dict()))) == calibration
    assert MotionCalibration.load(calibration.save(tmp_path / "cal.json")) == calibration
    for scores, buckets in [((0.0,), (0.0,)), ((0.0, 0.0), (0.0, 9.0)), ((0.0, 1.0), (9.0, 0.0))]:
        with pytest.raises(InvalidParameterError):
            MotionCalibration(scores, buckets)
    with pytest.raises(InvalidParameterError, match="two different motion scores"):
        MotionCalibration.fit([0.01, 0.01, 0.01])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InvalidParameterError, match="scores"):
        MotionCalibration.load(tmp_path / "bad.json")


def test_fitted_calibration_spreads_skewed_scores_evenly():
    scores = np.random.default_rng(0).exponential(0.004, 400)  # most clips barely move
    fitted = MotionCalibration.fit(scores)
    buckets = np.array([fitted.bucket(score * 64, 64) for score in scores])
    quarters = np.histogram(buckets, bins=4, range=(0, 256))[0] / len(buckets)
    assert np.all(np.abs(quarters - 0.25) < 0.04)
    assert buckets.min() == 0 and buckets.max() == 255
    default = np.array([MotionCalibration.default().bucket(score * 64, 64) for score in scores])
    assert np.histogram(default, bins=4, range=(0, 256))[0][0] / len(default) > 0.6  # the default bunches


def test_fps_labels_and_strides():
    assert fps_label(24, 1) == 24 and fps_label(24, 2) == 12 and fps_label(29.97, 5) == 6
    assert fps_label(5, 10) == 1
    assert stride_for_fps(30, 6) == 5 and stride_for_fps(24, 30) == 1
    with pytest.raises(InvalidParameterError):
        fps_label(24, 0)


def test_faster_videos_get_higher_buckets_and_fps_follows_the_stride(pan_dataset):
    assert pan_dataset.skipped == []
    by_video: dict[str, dict[int, list[dict]]] = {}
    for record in pan_dataset.clips:
        by_video.setdefault(record["source"], {}).setdefault(record["stride"], []).append(record)
        assert record["fps"] == SOURCE_FPS // record["stride"] and record["source_fps"] == SOURCE_FPS
    order = sorted(by_video, key=lambda source: int(source[-5]))  # pan0 .. pan4, slowest first
    for stride in (1, 2):
        buckets = [max(r["motion_bucket_id"] for r in by_video[source][stride]) for source in order]
        assert buckets == sorted(set(buckets)), buckets  # strictly increasing with speed
    assert by_video[order[0]][1][0]["motion_bucket_id"] == 0
    for source in order[2:]:  # twice the stride, twice the motion per clip frame
        assert by_video[source][2][0]["motion_bucket_id"] > by_video[source][1][0]["motion_bucket_id"]
    assert [len(by_video[order[0]][stride]) for stride in (1, 2)] == [2, 1]  # 16 frames: 2 x 6, 1 x 11


def test_clip_dataset_reads_back_exactly_what_was_written(pan_videos, pan_dataset):
    _, rendered = pan_videos
    dataset = ClipDataset(pan_dataset.path)
    assert len(dataset) == len(pan_dataset.clips) and dataset.records == pan_dataset.clips
    assert (dataset.width, dataset.height, dataset.frames) == (WIDTH, HEIGHT, 6)
    assert dataset.calibration == MotionCalibration.default()
    for index, record in enumerate(dataset.records):
        clip = dataset[index]
        source = rendered[record["source"]]
        expected = source[record["start"] : record["start"] + 6 * record["stride"] : record["stride"]]
        assert clip.frames.dtype == np.uint8 and np.array_equal(clip.frames, expected)
        assert (clip.id, clip.fps, clip.motion_bucket_id) == (
            record["id"],
            record["fps"],
            record["motion_bucket_id"],
        )
        assert clip.motion_score == pytest.approx(motion_score(expected))
    index = read_index(pan_dataset.path)
    assert index["format"] == "svdlab-clips" and index["version"] == 1
    assert sorted(p.name for p in (pan_dataset.path / "clips").iterdir()) == [
        f"{r['id']}.npz" for r in dataset.records
    ]


def test_relabel_refits_and_restores(pan_dataset, tmp_path):
    before = [record["motion_bucket_id"] for record in ClipDataset(pan_dataset.path).records]
    saved = MotionCalibration.default().save(tmp_path / "default.json")
    fitted = relabel(pan_dataset.path, "fit")
    after = ClipDataset(pan_dataset.path)
    assert fitted.source == "fit" and after.calibration == fitted
    buckets = [record["motion_bucket_id"] for record in after.records]
    assert min(buckets) == 0 and max(buckets) == 255 and buckets != before
    by_score = sorted(after.records, key=lambda record: record["motion_score"])
    assert [r["motion_bucket_id"] for r in by_score] == sorted(buckets)  # still ordered by motion
    relabel(pan_dataset.path, saved)
    assert [record["motion_bucket_id"] for record in ClipDataset(pan_dataset.path).records] == before


def test_fit_calibration_in_prepare_spreads_buckets(pan_videos, tmp_path):
    folder, _ = pan_videos
    prepared = prepare_dataset(
        folder, tmp_path / "data", width=WIDTH, height=HEIGHT, frames=6, fps=[12], calibration="fit"
    )
    buckets = sorted(record["motion_bucket_id"] for record in prepared.clips)
    assert prepared.calibration.source == "fit" and {r["stride"] for r in prepared.clips} == {2}
    assert len(buckets) == 5 and buckets[0] == 0 and buckets[-1] == 255
    for rank, bucket in enumerate(buckets):  # even spread: the k-th of n clips near 255 k / (n - 1)
        assert abs(bucket - 255 * rank / 4) <= 20


def test_clips_never_span_a_scene_cut(tmp_path):
    first = render_sprite_clip(10, width=WIDTH, height=HEIGHT, frames=10, pan=(1.0, 0.0))
    second = render_sprite_clip(11, width=WIDTH, height=HEIGHT, frames=10, pan=(0.0, 1.0))
    joined = np.concatenate([first.frames, second.frames])
    write_lossless_mp4(joined, tmp_path / "videos" / "two_shots.mp4", SOURCE_FPS)
    prepared = prepare_dataset(tmp_path / "videos", tmp_path / "data", width=WIDTH, height=HEIGHT, frames=4)
    spans = [(r["start"], r["start"] + 3 * r["stride"], r["scene"]) for r in prepared.clips]
    assert spans == [(0, 3, 0), (4, 7, 0), (10, 13, 1), (14, 17, 1)]  # cut at frame 10; 8-11 would span it
    dataset = ClipDataset(tmp_path / "data")
    assert np.array_equal(dataset[2].frames, second.frames[:4])
    limited = prepare_dataset(
        tmp_path / "videos", tmp_path / "limited", width=32, height=32, frames=4, max_clips_per_scene=1
    )
    assert [(r["start"], r["scene"]) for r in limited.clips] == [(0, 0), (10, 1)]


def test_corrupt_and_short_videos_are_skipped_with_a_reason(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    good = render_sprite_clip(12, width=WIDTH, height=HEIGHT, frames=8)
    write_lossless_mp4(good.frames, videos / "good.mp4", SOURCE_FPS)
    write_lossless_mp4(good.frames[:3], videos / "short.mp4", SOURCE_FPS)
    (videos / "x.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    (videos / "notes.txt").write_text("not a video, not picked up")
    reported = []
    prepared = prepare_dataset(
        videos,
        tmp_path / "data",
        width=32,
        height=24,
        frames=4,
        on_skip=lambda source, reason: reported.append((source.name, reason)),
    )
    reasons = dict(reported)
    assert sorted(reasons) == ["short.mp4", "x.mp4"]
    assert "cannot decode" in reasons["x.mp4"] and "too short: 3 frames" in reasons["short.mp4"]
    assert [(s["source"].rsplit("/", 1)[-1], s["reason"]) for s in prepared.skipped] == sorted(reported)
    assert {r["source"] for r in prepared.clips} == {str(videos / "good.mp4")} and len(prepared.clips) == 2
    assert ClipDataset(tmp_path / "data")[0].frames.shape == (4, 24, 32, 3)


def test_bad_inputs_are_refused_with_what_to_do(tmp_path):
    with pytest.raises(InvalidParameterError, match="no such file or folder"):
        find_videos(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidParameterError, match="no video files"):
        find_videos(tmp_path / "empty")
    with pytest.raises(InvalidParameterError, match="not a clip dataset"):
        ClipDataset(tmp_path / "empty")
    with pytest.raises(InvalidParameterError, match="fps or strides, not both"):
        prepare_dataset(tmp_path, tmp_path / "out", fps=[6], strides=[2])
    video = write_lossless_mp4(render_sprite_clip(0, frames=4).frames, tmp_path / "v" / "a.mp4", 8)
    prepare_dataset(video, tmp_path / "data", frames=2)
    with pytest.raises(InvalidParameterError, match="already holds a dataset"):
        prepare_dataset(video, tmp_path / "data", frames=2)
    assert len(prepare_dataset(video, tmp_path / "data", frames=4, overwrite=True).clips) == 1
    assert len(list((tmp_path / "data" / "clips").iterdir())) == 1


def test_scene_ranges_bound_what_random_scenes_draw(tmp_path):
    ranges = SceneRanges(max_sprites=2, max_speed=0.05, max_pan=0.02, pan_probability=1.0, fills=("solid",))
    for seed in range(20):
        clip = render_sprite_clip(seed, ranges=ranges)
        assert 1 <= len(clip.speeds) <= 2 and max(clip.speeds) <= 0.05 * 64
        assert math.hypot(*clip.pan) <= 0.02 * 64 and clip.labels.max() == len(clip.speeds)
    args = ["--max-sprites", "1", "--max-speed", "0.03", "--max-pan", "0", "--pan-probability", "0"]
    result = CliRunner().invoke(app, ["synth-data", str(tmp_path), "--count", "4", *args, "--quiet"])
    assert result.exit_code == 0, result.output
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert truth["ranges"]["max_sprites"] == 1 and truth["ranges"]["max_speed"] == 0.03
    assert all(len(v["speeds"]) == 1 and v["speeds"][0] <= 0.03 * 64 for v in truth["videos"])
    assert all(v["pan"] == [0.0, 0.0] for v in truth["videos"])


def test_scene_ranges_bound_the_directions_of_sprites_and_pans(tmp_path):
    ranges = SceneRanges(max_pan=0.05, pan_probability=1.0, directions=(-30, 30))
    clips = [render_sprite_clip(seed, ranges=ranges) for seed in range(20)]
    assert all(-30 <= direction <= 30 for clip in clips for direction in clip.directions)
    pans = [clip.pan for clip in clips if clip.pan != (0.0, 0.0)]  # still scenes (10 %) do not pan
    assert len(pans) >= 15 and all(dx > 0 and abs(math.degrees(math.atan2(dy, dx))) <= 30 for dx, dy in pans)
    # the default range draws exactly what scenes drew before it existed
    assert render_sprite_clip(7).directions == render_sprite_clip(7, ranges=SceneRanges()).directions
    args = ["--count", "2", "--directions", "80:100", "--quiet"]
    result = CliRunner().invoke(app, ["synth-data", str(tmp_path), *args])
    assert result.exit_code == 0, result.output
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert truth["ranges"]["directions"] == [80.0, 100.0]
    assert all(80 <= direction <= 100 for v in truth["videos"] for direction in v["directions"])


def test_scene_ranges_bound_the_sizes_of_sprites(tmp_path):
    def radius(clip):  # the sprite's radius from its largest area in view, as a share of the side (64 px)
        return math.sqrt(max((labels == 1).sum() for labels in clip.labels) / math.pi) / 64

    small, large = (SceneRanges(max_sprites=1, sizes=sizes) for sizes in ((0.08, 0.1), (0.3, 0.35)))
    small_radii = [radius(render_sprite_clip(seed, ranges=small)) for seed in range(6)]
    large_radii = [radius(render_sprite_clip(seed, ranges=large)) for seed in range(6)]
    assert max(small_radii) < 0.1 and np.median(large_radii) > 0.25, (small_radii, large_radii)
    result = CliRunner().invoke(
        app, ["synth-data", str(tmp_path), "--count", "1", "--sizes", "0.2:0.3", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "truth.json").read_text())["ranges"]["sizes"] == [0.2, 0.3]


def test_scene_ranges_set_the_strength_of_the_backgrounds_fine_detail(tmp_path):
    def detail_in(seed, detail):  # mean change (levels) from the same scene drawn without fine detail
        plain = render_sprite_clip(seed, ranges=SceneRanges(detail=(0, 0))).frames.astype(float)
        drawn = render_sprite_clip(seed, ranges=SceneRanges(detail=detail)).frames
        return float(np.abs(drawn - plain).mean())

    faint = [detail_in(seed, (0, 2)) for seed in range(4)]
    strong = [detail_in(seed, (30, 30)) for seed in range(4)]
    assert max(faint) < 1 and min(strong) > 5, (faint, strong)
    result = CliRunner().invoke(
        app, ["synth-data", str(tmp_path), "--count", "1", "--detail", "5:10", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "truth.json").read_text())["ranges"]["detail"] == [5.0, 10.0]


def test_scene_ranges_choose_the_kinds_of_background(tmp_path):
    def steepest_step(seed, kind):  # the largest change (levels) between neighbouring background pixels
        clip = render_sprite_clip(seed, ranges=SceneRanges(backgrounds=(kind,), detail=(0, 0)))
        sprite = cv2.dilate((clip.labels[0] > 0).astype(np.uint8), np.ones((5, 5), np.uint8))  # and its edge
        frame, background = clip.frames[0].astype(float), sprite == 0
        steps = np.abs(np.diff(frame, axis=1)).max(axis=-1)
        return float(steps[background[:, 1:] & background[:, :-1]].max())

    smooth = [steepest_step(seed, "gradient") for seed in range(4)]
    sharp = [steepest_step(seed, "checker") for seed in range(4)]
    assert max(smooth) < 10 and min(sharp) > 40, (smooth, sharp)
    result = CliRunner().invoke(
        app, ["synth-data", str(tmp_path), "--count", "1", "--backgrounds", "noise,gradient", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "truth.json").read_text())["ranges"]["backgrounds"] == ["noise", "gradient"]


def test_scene_ranges_set_the_slowest_pan_and_the_share_of_still_scenes(tmp_path):
    always = SceneRanges(min_pan=0.01, max_pan=0.03, pan_probability=1.0, still_probability=0.0)
    pans = [math.hypot(*render_sprite_clip(seed, ranges=always).pan) for seed in range(20)]
    assert all(0.01 * 64 <= pan <= 0.03 * 64 for pan in pans), pans
    stills = [render_sprite_clip(seed, ranges=SceneRanges(still_probability=1.0)) for seed in range(4)]
    assert all(clip.pan == (0.0, 0.0) and max(clip.speeds) == 0 for clip in stills)
    args = ["--min-pan", "0.02", "--max-pan", "0.03", "--pan-probability", "1", "--still-probability", "0"]
    result = CliRunner().invoke(app, ["synth-data", str(tmp_path / "ok"), "--count", "3", *args, "--quiet"])
    assert result.exit_code == 0, result.output
    truth = json.loads((tmp_path / "ok" / "truth.json").read_text())
    assert truth["ranges"]["min_pan"] == 0.02 and truth["ranges"]["still_probability"] == 0.0
    assert all(math.hypot(*v["pan"]) >= 0.02 * 64 for v in truth["videos"])


def test_the_default_ranges_draw_the_scenes_drawn_before_the_range_fields_existed():
    frames = render_sprite_clip(7, ranges=SceneRanges()).frames  # its digest before those fields existed:
    assert hashlib.sha256(frames.tobytes()).hexdigest()[:16] == "34c9540636f13071"


def test_solid_sprites_are_one_colour_apart_from_fine_noise():
    clip = render_sprite_clip(3, ranges=SceneRanges(fills=("solid",)))
    for number in range(1, len(clip.speeds) + 1):
        core = cv2.erode((clip.labels[0] == number).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        assert clip.frames[0][core].astype(float).std(axis=0).max() < 12


def test_cli_synth_data_then_prepare_data(tmp_path):
    runner = CliRunner()
    videos, data = tmp_path / "videos", tmp_path / "data"
    result = runner.invoke(
        app, ["synth-data", str(videos), "--count", "3", "--size", "48x32", "--frames", "8", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in videos.iterdir())
    assert names == ["synth_0000.mp4", "synth_0001.mp4", "synth_0002.mp4", "truth.json"]
    (videos / "x.mp4").write_bytes(b"not a video")
    args = ["prepare-data", str(videos), "--out", str(data), "--size", "32x32", "--frames", "4"]
    result = runner.invoke(app, [*args, "--fps", "8,4", "--calibration", "fit", "--quiet"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "x.mp4" in warnings[0] and "cannot decode" in warnings[0]
    assert "9 clips" in result.output and "skipped 1 of 4 videos" in result.output
    dataset = ClipDataset(data)
    assert len(dataset) == 9 and {record["fps"] for record in dataset.records} == {8, 4}
    assert math.isclose(dataset.calibration.buckets[-1], 255)

    result = runner.invoke(app, ["relabel", str(data), "--calibration", "default"])
    assert result.exit_code == 0 and "default motion calibration" in result.output, result.output
    relabelled = ClipDataset(data)
    assert relabelled.calibration == MotionCalibration.default()
    assert [r["motion_bucket_id"] for r in relabelled.records] == [
        MotionCalibration.default().bucket(r["motion_score"], 32) for r in relabelled.records
    ]


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["prepare-data", "{tmp}/missing", "--out", "{tmp}/data"], "no such file or folder"),
        (["prepare-data", "{tmp}", "--out", "{tmp}/data", "--fps", "six"], "--fps 'six'"),
        (["prepare-data", "{tmp}", "--out", "{tmp}/data", "--size", "big"], "size='big'"),
        (["synth-data", "{tmp}/synth", "--count", "0"], "count=0"),
        (["synth-data", "{tmp}/synth", "--count", "1", "--max-sprites", "0"], "max_sprites=0"),
        (["synth-data", "{tmp}/synth", "--count", "1", "--max-speed", "-1"], "max_speed=-1.0"),
        (["synth-data", "{tmp}/synth", "--count", "1", "--pan-probability", "2"], "pan_probability=2.0"),
        (["synth-data", "{tmp}/synth", "--count", "1", "--directions", "30:-30"], "directions=30:-30"),
        (["synth-data", "{tmp}/synth", "--count", "1", "--directions", "east"], "directions='east'"),
        (["synth-data", "{tmp}/synth", "--count", "1", "--sizes", "0.3:0.1"], "sizes=0.3:0.1"),
        (["synth-data", "{tmp}/synth", "--count", "1", "--sizes", "big"], "sizes='big'"),
        (["synth-data", "{tmp}/synth", "--count", "1", "--detail", "20:10"], "detail=20:10"),
        (["synth-data", "{tmp}/synth", "--count", "1", "--backgrounds", "wood"], "backgrounds=('wood',)"),
        (
            ["synth-data", "{tmp}/synth", "--count", "1", "--min-pan", "0.05", "--max-pan", "0.03"],
            "min_pan=0.05",
        ),
        (["synth-data", "{tmp}/synth", "--count", "1", "--still-probability", "2"], "still_probability=2.0"),
        (["relabel", "{tmp}"], "dataset.json"),
    ],
)
def test_cli_input_errors_exit_2_in_one_line(tmp_path, args, phrase):
    result = CliRunner().invoke(app, [arg.format(tmp=tmp_path) for arg in args])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and phrase in lines[0], result.output
    assert not (tmp_path / "data").exists()
