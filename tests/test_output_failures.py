"""Failures writing outputs (disk full, read-only, permissions, something in the way) end in one line,
exit 2, keep what was finished, and a re-run finishes the rest; stale temp files are cleaned up."""

import errno
import functools
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import svdlab.media.atomic
from svdlab.cli import app
from svdlab.experiments.store import Store
from svdlab.media.atomic import check_writable, remove_stale_temps
from tests.conftest import make_image

# generate's file name for the demo at its defaults: image, model, settings, then a hash of every setting
GENERATED_NAME = re.compile(
    r"(?P<image>\w+?)_demo_mb127_aug0\.02_fps8_seed42_[0-9a-f]{8}\.(?P<suffix>json|mp4)"
)
SPEC = """
name = "full"
model = "tiny-random"
images = ["photo.png"]
[grid]
motion_bucket_id = [60, 200]
[fixed]
steps = 2
"""


@pytest.fixture
def sweep_spec(tmp_path) -> Path:
    make_image(0, 80, 60).save(tmp_path / "photo.png")
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    return spec


def fail_writes(monkeypatch, kind: str, code: int, after: int = 0) -> None:
    """Make atomic writes of `kind` ('.mp4', '.json' or 'report') fail with `code` after `after` succeed,
    as a disk that fills up (or a file system that turns read-only) while the file is being written."""
    original = svdlab.media.atomic._flush
    seen = []

    def flush(path: Path) -> None:
        if path.name.startswith(".report.") if kind == "report" else path.suffix == kind:
            seen.append(path)
            if len(seen) > after:
                raise OSError(code, {errno.ENOSPC: "No space left on device"}.get(code, "refused"), str(path))
        original(path)

    monkeypatch.setattr(svdlab.media.atomic, "_flush", flush)


class FullDiskCursor(sqlite3.Cursor):
    """A cursor whose commits fail as SQLite's do when the disk is full."""

    def execute(self, sql, *args):
        if sql == "COMMIT" and FullDiskCursor.armed:
            raise sqlite3.OperationalError("database or disk is full")
        return super().execute(sql, *args)


class FullDiskConnection(sqlite3.Connection):
    def cursor(self, *args, **kwargs):
        return super().cursor(FullDiskCursor)


def fill_the_store_after_one_job(monkeypatch) -> None:
    """The store's disk fills up after the first job is recorded."""
    monkeypatch.setattr(sqlite3, "connect", functools.partial(sqlite3.connect, factory=FullDiskConnection))
    original = Store.record_done

    def record_done(self, *args, **kwargs):
        original(self, *args, **kwargs)
        FullDiskCursor.armed = True

    FullDiskCursor.armed = False
    monkeypatch.setattr(Store, "record_done", record_done)


def one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def assert_store_consistent(runs: Path) -> None:
    """Every recorded video and manifest is on disk, and every video stands with its manifest."""
    for row in Store(runs).results("full"):
        if row["status"] == "done":
            assert (runs / row["video"]).is_file() and (runs / row["video"]).with_suffix(".json").is_file()
    for video in (runs / "full").glob("*.mp4"):  # the report keeps copies of its own
        assert video.with_suffix(".json").is_file(), video


@pytest.mark.parametrize("point", [".mp4", ".json", "store", "report"])
def test_a_disk_that_fills_mid_sweep_is_one_line_and_a_rerun_finishes(
    tmp_path, sweep_spec, monkeypatch, point
):
    runs = tmp_path / "runs"
    args = ["sweep", str(sweep_spec), "--runs-dir", str(runs), "--quiet", "--batch-size", "1"]
    with monkeypatch.context() as patches:
        if point == "store":
            fill_the_store_after_one_job(patches)
        else:
            fail_writes(patches, point, errno.ENOSPC, after=0 if point == "report" else 1)
        line = one_error_line(CliRunner().invoke(app, args))
    assert "the disk is full" in line and "free space and run the same command again" in line
    where = {".mp4": ".mp4", ".json": ".json", "store": "svdlab.db", "report": "report"}[point]
    assert where in line
    assert_store_consistent(runs)
    finished = len(Store(runs).finished_keys("full"))
    assert finished == (2 if point == "report" else 1)  # what was finished before the disk filled is kept

    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert f"{2 - finished} videos made, {finished} already done" in again.output
    assert len(Store(runs).finished_keys("full")) == 2 and (runs / "full" / "report" / "index.html").is_file()
    assert_store_consistent(runs)
    assert not [path for path in runs.rglob("*") if ".tmp-" in path.name]


def made_files(folder: Path) -> list[tuple[str, str]]:
    """(image stem, suffix) of every file in `folder`, each checked to be generate's name for the demo at
    its defaults and 2 steps; a temp file or anything else fails the check."""
    names = sorted(path.name for path in folder.iterdir())
    matches = [GENERATED_NAME.fullmatch(name) for name in names]
    assert all(matches), names
    return [(match["image"], match["suffix"]) for match in matches]


@pytest.mark.parametrize("point", [".mp4", ".json"])
def test_a_disk_that_fills_during_generate_keeps_the_finished_videos(tmp_path, monkeypatch, point):
    images = []
    for i in range(2):
        images.append(tmp_path / f"photo{i}.png")
        make_image(i).save(images[-1])
    out = tmp_path / "out"
    fail_writes(monkeypatch, point, errno.ENOSPC, after=1)
    result = CliRunner().invoke(
        app,
        ["generate", *map(str, images), "--out", str(out), "--steps", "2", "--quiet", "--batch-size", "1"],
    )
    line = one_error_line(result)
    assert f"error: cannot write {out / 'photo1_'}" in line and "the disk is full" in line
    assert made_files(out) == [("photo0", "json"), ("photo0", "mp4")]
    # the first video with its manifest; the second video is gone with its manifest, and no temp files


@pytest.mark.parametrize(
    ("code", "phrase"),
    [
        (errno.EROFS, "the file system is read-only"),
        (errno.EACCES, "choose a writable output folder or fix its permissions"),
    ],
)
def test_read_only_and_permission_failures_are_one_line(tmp_path, monkeypatch, code, phrase):
    make_image(0).save(tmp_path / "photo.png")
    fail_writes(monkeypatch, ".mp4", code)
    result = CliRunner().invoke(
        app,
        ["generate", str(tmp_path / "photo.png"), "--out", str(tmp_path / "out"), "--steps", "2", "--quiet"],
    )
    assert phrase in one_error_line(result)


def test_a_folder_in_the_way_of_a_video_is_one_line_and_leaves_no_lone_video(tmp_path):
    make_image(0).save(tmp_path / "photo.png")
    args = ["generate", str(tmp_path / "photo.png"), "--steps", "2", "--quiet"]
    assert CliRunner().invoke(app, [*args, "--out", str(tmp_path / "probe")]).exit_code == 0
    manifest = next((tmp_path / "probe").glob("*.json")).name  # the name the same settings write
    out = tmp_path / "out"
    (out / manifest).mkdir(parents=True)  # where the manifest goes
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert "a folder is in the way" in one_error_line(result)
    assert not list(out.glob("*.mp4")) and not [path for path in out.iterdir() if ".tmp-" in path.name]


def test_a_bad_out_fails_before_the_model_loads(tmp_path, monkeypatch):
    import svdlab.api

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded before the output folder was checked")

    monkeypatch.setattr(svdlab.api, "load_model", no_loading)
    make_image(0).save(tmp_path / "photo.png")
    (tmp_path / "file").write_text("x")
    result = CliRunner().invoke(
        app, ["generate", str(tmp_path / "photo.png"), "--out", str(tmp_path / "file" / "out"), "--quiet"]
    )
    assert "a file is in the way of a folder" in one_error_line(result)


def test_a_bad_runs_dir_fails_before_the_model_loads(tmp_path, sweep_spec, monkeypatch):
    import svdlab.experiments.runner

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded before the runs folder was checked")

    monkeypatch.setattr(svdlab.experiments.runner, "load_model", no_loading)
    (tmp_path / "file").write_text("x")
    result = CliRunner().invoke(
        app, ["sweep", str(sweep_spec), "--runs-dir", str(tmp_path / "file" / "runs")]
    )
    assert "a file is in the way of a folder" in one_error_line(result)


def test_check_writable_leaves_no_trace(tmp_path):
    check_writable(tmp_path / "a" / "b")
    assert list(tmp_path.iterdir()) == []


def dead_pid() -> int:
    """The id of a process that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_stale_temp_files_of_killed_writers_are_removed_and_live_ones_kept(tmp_path):
    dead, live = dead_pid(), subprocess.os.getppid()
    stale_file = tmp_path / f".photo.tmp-{dead}-0123abcd.mp4"
    stale_folder = tmp_path / "sub" / f".report.tmp-{dead}-89abcdef"
    in_flight = tmp_path / f".other.tmp-{live}-0123abcd.mp4"
    for path in (stale_file, in_flight):
        path.write_bytes(b"half")
    stale_folder.mkdir(parents=True)
    (stale_folder / "index.html").write_text("half")
    (tmp_path / ".keep.txt").write_text("a user's hidden file")
    assert sorted(remove_stale_temps(tmp_path)) == sorted([stale_file, stale_folder])
    assert in_flight.exists() and (tmp_path / ".keep.txt").exists() and not stale_folder.exists()


def test_a_resumed_sweep_leaves_no_temp_file_behind(tmp_path, sweep_spec):
    runs = tmp_path / "runs"
    args = ["sweep", str(sweep_spec), "--runs-dir", str(runs), "--quiet"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    dead = dead_pid()  # as if `sweep` had been killed with kill -9 while writing these
    (runs / "full" / f".photo-x.tmp-{dead}-0123abcd.mp4").write_bytes(b"half a video")
    (runs / "full" / f".report.tmp-{dead}-0123abcd").mkdir()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert not [path for path in runs.rglob("*") if ".tmp" in path.name]


def test_generate_removes_what_a_killed_generate_left_in_its_folder(tmp_path):
    make_image(0).save(tmp_path / "photo.png")
    out = tmp_path / "out"
    out.mkdir()
    stale = out / f".photo_demo_mb127_aug0.02_fps8_seed42_0123abcd.tmp-{dead_pid()}-0123abcd.mp4"
    stale.write_bytes(b"half a video")
    result = CliRunner().invoke(
        app, ["generate", str(tmp_path / "photo.png"), "--out", str(out), "--steps", "2", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert made_files(out) == [("photo", "json"), ("photo", "mp4")]


@pytest.mark.parametrize("command", [["runs", "list"], ["runs", "show", "x"], ["report", "x"]])
def test_a_runs_dir_that_is_a_file_is_one_line(tmp_path, command):
    (tmp_path / "runs").write_text("not a folder")
    line = one_error_line(CliRunner().invoke(app, [*command, "--runs-dir", str(tmp_path / "runs")]))
    assert "a file is in the way of a folder" in line
