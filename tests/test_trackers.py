"""Trackers: offline wandb runs per swept value with a summary table; a failing tracker warns once."""

from __future__ import annotations

import json
import struct
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from svdlab.errors import SvdlabWarning
from svdlab.experiments.spec import SweepSpec, WandbSpec
from svdlab.experiments.trackers import INIT_TIMEOUT_S, TrackedVideo, WandbTracker, make_trackers
from svdlab.media import write_video

wandb = pytest.importorskip("wandb")
from wandb.proto import wandb_internal_pb2  # noqa: E402

BLOCK = 32768
HEADER = 7


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """wandb in offline mode with every folder it writes under tmp_path."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    for name in ("DIR", "CACHE_DIR", "CONFIG_DIR", "DATA_DIR"):
        folder = tmp_path / f"wandb-{name.lower()}"
        folder.mkdir()
        monkeypatch.setenv(f"WANDB_{name}", str(folder))
    wandb.teardown()
    yield tmp_path / "wandb-dir" / "wandb"
    wandb.teardown()


def _records(path: Path) -> list:
    """The records of an offline run's .wandb transaction log (leveldb-style blocks of chunks)."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, chunks, pos = [], b"", HEADER
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if kind == 0 and length == 0:
            break
        chunks += data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunks)
            records.append(record)
            chunks = b""
    return records


def _set(target: dict, path: list[str], value: object) -> None:
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = value


def _read_run(folder: Path) -> dict:
    """Name, group, project, config and final summary of one offline run."""
    (log,) = folder.glob("run-*.wandb")
    run: dict = {"config": {}, "summary": {}, "folder": folder}
    for record in _records(log):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.update(name=record.run.display_name, group=record.run.run_group, project=record.run.project)
            updates, target = record.run.config.update, run["config"]
        elif kind == "summary":
            updates, target = record.summary.update, run["summary"]
        else:
            continue
        for item in updates:
            _set(target, list(item.nested_key) or [item.key], json.loads(item.value_json))
    return run


def _offline_runs(wandb_dir: Path) -> dict[str, dict]:
    """Every offline run by name, read after wandb's service has shut down and flushed its logs."""
    wandb.teardown()
    runs = [_read_run(folder) for folder in sorted(wandb_dir.glob("offline-run-*"))]
    return {run["name"]: run for run in runs}


def _video(tmp_path: Path, name: str) -> Path:
    return write_video(torch.rand(4, 3, 48, 64), tmp_path / name, 6)


def _job(tmp_path: Path, image: str, bucket: int, suffix: str = "mp4") -> TrackedVideo:
    params = {"motion_bucket_id": bucket, "fps": 6, "seed": 7, "steps": 2}
    metrics = {"motion": bucket / 1000, "flicker": 0.25}
    path = _video(tmp_path, f"{Path(image).stem}-{bucket}.{suffix}")
    return TrackedVideo(image, {"motion_bucket_id": bucket}, params, path, metrics)


def test_wandb_runs_per_swept_value_with_summary_table(tmp_path: Path, offline: Path) -> None:
    tracker = WandbTracker(WandbSpec(project="svd-test"), "buckets", "tiny-random")
    with warnings.catch_warnings():
        warnings.simplefilter("error", SvdlabWarning)
        for bucket in (100, 180):
            for image in ("images/cat.png", "images/dog.png"):
                tracker.log_video(_job(tmp_path, image, bucket))
        tracker.close()
    runs = _offline_runs(offline)
    assert set(runs) == {"motion_bucket_id=100", "motion_bucket_id=180", "summary"}
    for bucket in (100, 180):
        run = runs[f"motion_bucket_id={bucket}"]
        assert (run["group"], run["project"]) == ("buckets", "svd-test")
        assert run["config"]["motion_bucket_id"] == bucket
        assert run["config"]["model"] == "tiny-random" and run["config"]["experiment"] == "buckets"
        for stem in ("cat", "dog"):
            assert run["summary"][f"{stem}/motion"] == pytest.approx(bucket / 1000)
            assert run["summary"][f"{stem}/flicker"] == 0.25
            media = run["summary"][f"{stem}/video"]
            assert media["_type"] == "video-file" and media["path"].endswith(".mp4")
            assert (run["folder"] / "files" / media["path"]).is_file()
    table = runs["summary"]["summary"]["videos"]
    assert table["_type"] == "table-file" and table["nrows"] == 4
    content = json.loads((runs["summary"]["folder"] / "files" / table["path"]).read_text())
    assert content["columns"] == ["image", "motion_bucket_id", "seed", "motion", "flicker", "video"]
    assert sorted((row[0], row[1]) for row in content["data"]) == [
        ("cat", 100),
        ("cat", 180),
        ("dog", 100),
        ("dog", 180),
    ]


def test_formats_wandb_cannot_show_log_metrics_only(tmp_path: Path, offline: Path) -> None:
    tracker = WandbTracker(WandbSpec(project="svd-test", group="stills"), "webp-sweep", "tiny-random")
    job = _job(tmp_path, "cat.png", 90, suffix="webp")
    job.swept["seed"] = 7
    with warnings.catch_warnings():
        warnings.simplefilter("error", SvdlabWarning)
        tracker.log_video(job)
        tracker.close()
    runs = _offline_runs(offline)
    run = runs["motion_bucket_id=90,seed=7"]
    assert run["group"] == "stills"
    assert run["summary"]["cat/motion"] == pytest.approx(0.09)
    assert "cat/video" not in run["summary"]
    table = runs["summary"]["summary"]["videos"]
    content = json.loads((runs["summary"]["folder"] / "files" / table["path"]).read_text())
    assert content["columns"] == ["image", "motion_bucket_id", "seed", "motion", "flicker", "video"]


def test_failure_mid_sweep_finishes_open_runs(
    tmp_path: Path, offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker = WandbTracker(WandbSpec(project="svd-test"), "buckets", "tiny-random")
    tracker.log_video(_job(tmp_path, "cat.png", 100))
    monkeypatch.setattr(wandb, "Video", _raise_os_error)
    (warning,) = _failing_sweep(tracker, tmp_path)
    assert "OSError: disk full" in str(warning.message)
    assert not tracker.runs
    wandb.teardown()
    (log,) = offline.glob("offline-run-*/run-*.wandb")
    (exit_record,) = [record.exit for record in _records(log) if record.WhichOneof("record_type") == "exit"]
    assert exit_record.exit_code == 1


def _raise_os_error(*args: object, **kwargs: object) -> None:
    raise OSError("disk full")


def _failing_sweep(tracker: WandbTracker, tmp_path: Path) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for bucket in (100, 180):
            tracker.log_video(_job(tmp_path, "cat.png", bucket))
        tracker.close()
    return [warning for warning in caught if issubclass(warning.category, SvdlabWarning)]


def test_failing_wandb_warns_once_and_never_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("api_key not configured (no-tty)\ncall wandb.login")

    monkeypatch.setattr(wandb, "init", refuse)
    tracker = WandbTracker(WandbSpec(project="svd-test"), "buckets", "tiny-random")
    (warning,) = _failing_sweep(tracker, tmp_path)
    message = str(warning.message)
    assert "\n" not in message and "RuntimeError: api_key not configured" in message
    assert "local store only" in message and "wandb login" in message
    assert tracker.failed and not tracker.runs


def test_a_silent_wandb_server_costs_one_short_wait_and_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits = []

    def time_out(*args: object, settings: wandb.Settings, **kwargs: object) -> None:
        waits.append(settings.init_timeout)  # how long a real init would wait for the silent server
        raise wandb.errors.CommError(f"Run initialization has timed out after {settings.init_timeout} sec.")

    monkeypatch.setattr(wandb, "init", time_out)
    tracker = WandbTracker(WandbSpec(project="svd-test"), "buckets", "tiny-random")
    (warning,) = _failing_sweep(tracker, tmp_path)
    assert waits == [INIT_TIMEOUT_S] and INIT_TIMEOUT_S <= 5  # one wait of a few seconds, then no more
    assert "timed out" in str(warning.message) and "local store only" in str(warning.message)


def test_missing_wandb_warns_once_with_install_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)
    tracker = WandbTracker(WandbSpec(project="svd-test"), "buckets", "tiny-random")
    (warning,) = _failing_sweep(tracker, tmp_path)
    assert "pip install wandb" in str(warning.message)


def test_make_trackers_follows_the_spec() -> None:
    assert make_trackers(SweepSpec(name="plain", images=["cat.png"]), "tiny-random") == []
    spec = SweepSpec(
        name="tracked", images=["cat.png"], trackers={"wandb": {"project": "svd", "entity": "lab"}}
    )
    (tracker,) = make_trackers(spec, "tiny-random")
    assert isinstance(tracker, WandbTracker)
    assert (tracker.spec.project, tracker.spec.entity, tracker.group) == ("svd", "lab", "tracked")
    assert tracker.model_name == "tiny-random"


def test_a_sweep_with_a_wandb_section_logs_every_video(tmp_path: Path, offline: Path) -> None:
    from typer.testing import CliRunner

    from svdlab.cli import app
    from tests.test_experiments import SMALL, write_spec

    spec = write_spec(tmp_path, SMALL + '\n[trackers.wandb]\nproject = "svd-sweeps"\n')
    result = CliRunner().invoke(app, ["sweep", str(spec), "--runs-dir", str(tmp_path / "runs"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output
    runs = _offline_runs(offline)
    assert set(runs) == {"motion_bucket_id=60", "motion_bucket_id=200", "summary"}
    for bucket in (60, 200):
        summary = runs[f"motion_bucket_id={bucket}"]["summary"]
        for stem in ("photo0", "photo1"):
            assert summary[f"{stem}/motion_score"] >= 0 and summary[f"{stem}/video"]["_type"] == "video-file"
    assert runs["summary"]["summary"]["videos"]["nrows"] == 4


def test_training_log_writes_json_lines_and_a_wandb_run(tmp_path: Path, offline: Path) -> None:
    from svdlab.training.log import TrainingLog

    log = TrainingLog(tmp_path, "sprites", {"seed": 3}, WandbSpec(project="svd-train"))
    log.log(10, {"loss": 0.5, "stage": "video"})
    log.log(20, {"loss": 0.25, "stage": "video"})
    log.close()
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert lines == [
        {"step": 10, "loss": 0.5, "stage": "video"},
        {"step": 20, "loss": 0.25, "stage": "video"},
    ]
    run = _offline_runs(offline)["sprites"]
    assert (run["project"], run["group"], run["config"]["seed"]) == ("svd-train", "sprites", 3)
    assert run["summary"]["loss"] == 0.25 and run["summary"]["_step"] == 20
