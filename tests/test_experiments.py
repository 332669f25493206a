"""Sweeps: spec validation, planning, the store, and a resumable run through the CLI."""

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import pyarrow.parquet
import pytest
import torch
from typer.testing import CliRunner

from svdlab.cli import app
from svdlab.errors import InvalidParameterError
from svdlab.experiments.planner import plan_sweep
from svdlab.experiments.spec import load_spec
from svdlab.experiments.store import DATABASE, Store
from tests.conftest import make_image

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def write_spec(folder: Path, body: str, images: int = 2) -> Path:
    (folder / "images").mkdir(exist_ok=True)
    for i in range(images):
        make_image(i, 80, 60).save(folder / "images" / f"photo{i}.png")
    spec = folder / "spec.toml"
    spec.write_text(body)
    return spec


SMALL = """
name = "small"
model = "tiny-random"
images = ["images/*.png"]
[grid]
motion_bucket_id = [60, 200]
[fixed]
steps = 2
noise_aug_strength = 0.05
"""


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        (
            'name = "x"\nimages = ["a.png"]\n[grid]\nbucket = [1]\n',
            "grid.bucket is not a generation parameter; allowed: motion_bucket_id",
        ),
        (
            'name = "x"\nimages = ["a.png"]\n[grid]\nmotion_bucket_id = [10, -5]\n',
            "grid.motion_bucket_id[1]: motion_bucket_id=-5 is not allowed: input should be greater",
        ),
        ('name = "x"\nimages = ["a.png"]\n[grid]\nfps = []\n', "grid.fps is an empty list"),
        ('name = "x"\nimages = ["a.png"]\n[fixed]\nfit = "zoom"\n', "fixed.fit: fit='zoom'"),
        ('name = "x"\nimages = ["a.png"]\n[fixed]\nsize = "big"\n', "fixed.size: size='big'"),
        ('name = "x"\nimage = ["a.png"]\n', "the top-level keys are name, model, images"),
        ('name = "x"\nimages = ["a.png"]\n[outputs]\nformat = "avi"\n', "outputs.format"),
        ('name = "no spaces"\nimages = ["a.png"]\n', "name"),
        ('name = "x"\nimages = [\n', "not valid TOML"),
    ],
)
def test_spec_mistakes_name_the_key_and_what_is_allowed(tmp_path, body, phrase):
    spec = tmp_path / "spec.toml"
    spec.write_text(body)
    with pytest.raises(InvalidParameterError) as caught:
        load_spec(spec)
    assert phrase in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.filterwarnings("ignore::svdlab.errors.SvdlabWarning")
def test_the_examples_are_valid_and_expand_to_their_grids(tiny_model):
    motion = load_spec(EXAMPLES / "motion_bucket_sweep.toml")
    noise = load_spec(EXAMPLES / "noise_aug_sweep.toml")
    assert motion.model == noise.model == "demo"
    assert [c["motion_bucket_id"] for c in motion.combinations()] == [20, 60, 120, 180, 240]
    assert {c["noise_aug_strength"] for c in motion.combinations()} == {0.02}
    assert [c["noise_aug_strength"] for c in noise.combinations()] == [0.02, 0.1, 0.2, 0.4]
    jobs = plan_sweep(motion, tiny_model, EXAMPLES)
    assert len(jobs) == 30 and len({job.key for job in jobs}) == 30
    assert {job.params.seed for job in jobs} == {42}
    classic_motion = load_spec(EXAMPLES / "real" / "motion_bucket_sweep_svd_xt.toml")
    classic_noise = load_spec(EXAMPLES / "real" / "noise_aug_sweep_svd_xt.toml")
    assert classic_motion.model == classic_noise.model == "svd-xt"
    assert [c["motion_bucket_id"] for c in classic_motion.combinations()] == [120, 180, 240, 300, 360]
    assert [c["noise_aug_strength"] for c in classic_noise.combinations()] == [0.1, 0.2, 0.3, 0.4]


def test_planner_keys_are_stable_and_duplicates_collapse(tiny_model, tmp_path):
    spec_path = write_spec(tmp_path, SMALL)
    spec = load_spec(spec_path)
    first = plan_sweep(spec, tiny_model, tmp_path)
    again = plan_sweep(spec, tiny_model, tmp_path)
    assert [job.key for job in first] == [job.key for job in again]
    assert len(first) == 4
    assert [(job.stem, job.swept) for job in first][:2] == [
        ("photo0", {"motion_bucket_id": 60}),
        ("photo0", {"motion_bucket_id": 200}),
    ]
    duplicated = spec.model_copy(update={"grid": {"motion_bucket_id": [60, 200, 60], "steps": [2]}})
    assert [job.key for job in plan_sweep(duplicated, tiny_model, tmp_path)] == [job.key for job in first]
    changed = spec.model_copy(update={"fixed": {**spec.fixed, "seed": 7}})
    assert not {job.key for job in plan_sweep(changed, tiny_model, tmp_path)} & {job.key for job in first}
    make_image(9, 80, 60).save(tmp_path / "images" / "photo0.png")  # new pixels, same file name
    assert plan_sweep(spec, tiny_model, tmp_path)[0].key != first[0].key


def _write_rows(args):
    runs_dir, worker = args
    store = Store(runs_dir)
    store.start_experiment(f"exp{worker}", {}, "m")
    for i in range(40):
        job = type("J", (), {"key": f"{worker}-{i}", "source": "img", "swept": {}, "params": _Params()})
        store.record_done(
            f"exp{worker}",
            job,
            {"model": {"name": "m"}, "timings": {}},
            {"path": "v", "manifest": "m", "sha256": "s"},
            {"motion_score": float(i)},
        )
    return len(store.finished_keys(f"exp{worker}"))


class _Params:
    seed = 1

    def model_dump(self):
        return {"seed": 1}


def test_rows_of_the_same_second_come_in_the_order_they_were_recorded(tmp_path, monkeypatch):
    monkeypatch.setattr("svdlab.experiments.store.utc_now", lambda: "2026-12-02T20:00:00+00:00")
    store = Store(tmp_path)
    store.start_experiment("grid", {}, "m")
    for key in ("c", "a", "b"):  # not in key order
        job = type("J", (), {"key": key, "source": "img", "swept": {}, "params": _Params()})
        store.record_done(
            "grid",
            job,
            {"model": {"name": "m"}, "timings": {}},
            {"path": "v", "manifest": "m", "sha256": "s"},
            {},
        )
    assert [row["key"] for row in store.results("grid")] == ["c", "a", "b"]
    for name in ("z-second", "m-third"):  # experiments updated in the same second: the newest first
        store.start_experiment(name, {}, "m")
    assert [row["name"] for row in store.experiments()] == ["m-third", "z-second", "grid"]


def test_store_is_wal_and_survives_concurrent_writers(tmp_path):
    with Pool(3) as pool:
        counts = pool.map(_write_rows, [(tmp_path, worker) for worker in range(3)])
    assert counts == [40, 40, 40]
    connection = sqlite3.connect(tmp_path / DATABASE)
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert connection.execute("SELECT COUNT(*) FROM metrics").fetchone()[0] == 120


def test_sweep_runs_measures_records_and_resumes(tmp_path):
    spec = write_spec(tmp_path, SMALL)
    runs = tmp_path / "runs"
    runner = CliRunner()
    dry = runner.invoke(app, ["sweep", str(spec), "--runs-dir", str(runs), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "small: 4 jobs, 0 already done, 4 to run in 1 same-shape group of sizes [4]" in dry.output
    assert "no weights were loaded" in dry.output
    assert not (runs / "small").exists()
    single = runner.invoke(
        app, ["sweep", str(spec), "--runs-dir", str(runs), "--dry-run", "--batch-size", "1"]
    )
    assert "4 to run in 4 packs of sizes [1, 1, 1, 1]" in single.output

    result = runner.invoke(app, ["sweep", str(spec), "--runs-dir", str(runs), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "4 videos made, 0 already done" in result.output
    assert f"report {runs / 'small' / 'report' / 'index.html'}" in result.output.replace("\n", "")
    videos = sorted((runs / "small").glob("*.mp4"))
    assert len(videos) == 4 and not list((runs / "small").glob(".*"))
    manifest = json.loads(videos[0].with_suffix(".json").read_text())
    assert manifest["experiment"] == "small" and set(manifest["metrics"]) >= {"motion_score", "psnr_first"}
    rows = Store(runs).results("small")
    assert len(rows) == 4 and all(row["status"] == "done" for row in rows)
    assert all((runs / row["video"]).is_file() and row["motion_score"] >= 0 for row in rows)
    assert {row["motion_bucket_id"] for row in rows} == {60, 200}

    planned = runner.invoke(app, ["sweep", str(spec), "--runs-dir", str(runs), "--dry-run"])
    assert "small: 4 jobs, 4 already done, 0 to run" in planned.output  # the same keys as the real run
    again = runner.invoke(app, ["sweep", str(spec), "--runs-dir", str(runs), "--quiet"])
    assert "0 videos made, 4 already done" in again.output
    fresh = runner.invoke(app, ["sweep", str(spec), "--runs-dir", str(runs), "--quiet", "--fresh"])
    assert "4 videos made, 0 already done" in fresh.output
    shown = runner.invoke(app, ["runs", "show", "small", "--runs-dir", str(runs)], env={"COLUMNS": "300"})
    assert shown.exit_code == 0 and "photo0.png" in shown.output and "motion_score" in shown.output
    listed = runner.invoke(app, ["runs", "list", "--runs-dir", str(runs)], env={"COLUMNS": "200"})
    assert "small" in listed.output
    missing = runner.invoke(app, ["runs", "show", "nope", "--runs-dir", str(runs)])
    assert missing.exit_code == 2 and "no experiment 'nope'" in missing.output

    reported = runner.invoke(app, ["report", "small", "--runs-dir", str(runs)])
    assert reported.exit_code == 0 and (runs / "small" / "report" / "index.html").is_file()
    unknown = runner.invoke(app, ["report", "nope", "--runs-dir", str(runs)])
    assert unknown.exit_code == 2 and unknown.output.startswith("error:")

    table_csv, table_parquet = tmp_path / "small.csv", tmp_path / "small.parquet"
    exported = runner.invoke(
        app,
        [
            "runs",
            "export",
            "small",
            "--runs-dir",
            str(runs),
            "--csv",
            str(table_csv),
            "--parquet",
            str(table_parquet),
        ],
    )
    assert exported.exit_code == 0, exported.output
    with open(table_csv, newline="") as handle:
        from_csv = list(csv.DictReader(handle))
    from_parquet = pyarrow.parquet.read_table(table_parquet).to_pylist()
    assert len(from_csv) == len(from_parquet) == 4
    for row in (from_csv[0], from_parquet[0]):
        assert {"image", "motion_bucket_id", "seed", "video", "motion_score", "ssim_first"} <= set(row)
    assert sorted(row["motion_score"] for row in from_parquet) == sorted(
        float(r["motion_score"]) for r in from_csv
    )


def test_sweep_model_option_replaces_the_specs_model_and_offline_advice_names_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "cache"))
    spec = write_spec(tmp_path, SMALL.replace('model = "tiny-random"', 'model = "svd-xt"'))
    runs = tmp_path / "runs"
    offline = CliRunner().invoke(app, ["sweep", str(spec), "--runs-dir", str(runs), "--quiet"])
    assert offline.exit_code == 2 and "HF_HUB_OFFLINE is set" in offline.output
    assert "--model demo" in offline.output and 'model = "demo"' in offline.output
    swapped = CliRunner().invoke(
        app, ["sweep", str(spec), "--runs-dir", str(runs), "--model", "tiny-random", "--quiet"]
    )
    assert swapped.exit_code == 0, swapped.output
    assert Store(runs).experiment("small")["model"] == "tiny-random"


def test_dry_run_loads_no_weights_and_says_what_it_cannot_know(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a dry run loaded weights")

    monkeypatch.setattr("svdlab.models.loading.StableVideoDiffusionPipeline.from_pretrained", refuse)
    monkeypatch.setattr("svdlab.models.loading.StableVideoDiffusionPipeline.download", refuse)
    spec = write_spec(tmp_path, SMALL.replace('model = "tiny-random"', 'model = "demo"'))
    runs = tmp_path / "runs"
    command = ["sweep", str(spec), "--runs-dir", str(runs), "--dry-run"]
    shipped = CliRunner().invoke(app, [*command, "--batch-size", "3"])
    assert shipped.exit_code == 0, shipped.output
    assert "small: 4 jobs, 0 already done, 4 to run in 2 packs of sizes [3, 1]" in shipped.output
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "cache"))
    hub = CliRunner().invoke(app, [*command, "--model", "svd-xt"])
    assert hub.exit_code == 0, hub.output
    assert (
        "4 jobs, already done unknown (stabilityai/stable-video-diffusion-img2vid-xt is not downloaded)"
        in (hub.output.replace("\n", ""))
    )


def _start_gated_sweep(spec: Path, runs: Path, gate: Path, *extra: str) -> subprocess.Popen:
    """Start `svdlab sweep` in a subprocess that waits at `gate` after each recorded video."""
    command = [sys.executable, "-m", "tests.gated_sweep", "sweep", str(spec), "--runs-dir", str(runs), *extra]
    env = {**os.environ, "SVDLAB_TEST_GATE": str(gate)}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_finished_jobs(process: subprocess.Popen, runs: Path, count: int) -> int:
    """Wait (on the store, not the clock) for `count` finished jobs or the end of the process."""
    done = 0
    while process.poll() is None and done < count:
        if (runs / DATABASE).exists():
            done = len(Store(runs).finished_keys("small"))
        time.sleep(0.05)
    return done


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM])
def test_a_stopped_sweep_loses_at_most_the_pack_in_flight_and_resumes(tmp_path, stop):
    spec = write_spec(tmp_path, SMALL.replace("[60, 200]", "[20, 60, 120, 200, 250]"), images=1)
    runs = tmp_path / "runs"
    process = _start_gated_sweep(spec, runs, tmp_path / "never", "--quiet", "--batch-size", "1")
    done = _wait_for_finished_jobs(process, runs, 1)  # it then waits at the gate, mid-sweep
    process.send_signal(stop)
    _, stderr = process.communicate()
    assert done == 1, stderr
    if stop == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL
    else:
        assert process.returncode == 2
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert (
            lines[-1].startswith("error: interrupted; finished jobs are saved in")
            and "Traceback" not in stderr
        )
    store = Store(runs)
    assert all((runs / row["video"]).is_file() for row in store.results("small"))  # no row points at nothing
    for video in (runs / "small").glob("*.mp4"):  # every visible file is whole: its manifest came after it
        assert video.with_suffix(".json").is_file()
    result = CliRunner().invoke(app, ["sweep", str(spec), "--runs-dir", str(runs), "--quiet"])
    assert result.exit_code == 0, result.output
    assert len(store.finished_keys("small")) == 5
    assert len(list((runs / "small").glob("*.mp4"))) == 5
    assert not [path for path in runs.rglob("*") if ".tmp" in path.name]


def test_the_same_sweep_started_twice_waits_and_does_each_job_once(tmp_path):
    spec = write_spec(tmp_path, SMALL.replace("[60, 200]", "[20, 60, 120]"), images=1)
    runs, gate = tmp_path / "runs", tmp_path / "gate"
    first = _start_gated_sweep(spec, runs, gate, "--batch-size", "1")
    try:
        assert _wait_for_finished_jobs(first, runs, 1) == 1  # the first holds the experiment, mid-sweep
        (tmp_path / "open").touch()
        second = _start_gated_sweep(spec, runs, tmp_path / "open", "--batch-size", "1")  # never held
        waiting = next((line for line in second.stderr if "another sweep" in line), "")  # "": it ended
        assert "another sweep of small is running" in waiting and "waiting for it" in waiting, waiting
    finally:
        gate.touch()  # let the first sweep go on, whatever happened
    outputs = [process.communicate()[0] for process in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    assert "small: 3 videos made, 0 already done" in outputs[0].replace("\n", "")
    assert "small: 0 videos made, 3 already done" in outputs[1].replace("\n", "")
    assert len(Store(runs).finished_keys("small")) == 3 and len(list((runs / "small").glob("*.mp4"))) == 3


def test_out_of_memory_records_the_failed_pack_and_a_rerun_finishes_it(tmp_path, monkeypatch):
    from svdlab.engine import VideoEngine

    spec = write_spec(tmp_path, SMALL)
    runs = tmp_path / "runs"
    original = VideoEngine.run_pack

    def fail_second_pack(self, pack, on_step=None):
        if fail_second_pack.calls == 1:
            raise torch.OutOfMemoryError("CUDA out of memory")
        fail_second_pack.calls += 1
        yield from original(self, pack, on_step)

    fail_second_pack.calls = 0
    monkeypatch.setattr(VideoEngine, "run_pack", fail_second_pack)
    runner = CliRunner()
    args = ["sweep", str(spec), "--runs-dir", str(runs), "--quiet", "--batch-size", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "error: out of memory on cpu after 2 videos" in result.output
    rows = Store(runs).results("small")
    assert sorted(row["status"] for row in rows) == ["done", "done", "failed", "failed"]
    assert {row["error"] for row in rows if row["status"] == "failed"} == {"out of memory on cpu"}
    monkeypatch.setattr(VideoEngine, "run_pack", original)
    again = runner.invoke(app, args)
    assert "2 videos made, 2 already done" in again.output
    assert all(row["status"] == "done" for row in Store(runs).results("small"))
