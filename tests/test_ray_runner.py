"""Sweeps on Ray: the same frames as the local runner, a killed actor's pack retried, every job done once,
Ctrl-C loses nothing, and bad addresses, resources and models fail in one line (exit 2)."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import ray
from typer.testing import CliRunner

from svdlab.cli import app
from svdlab.experiments.ray_runner import RayError, RayOptions, run_sweep_on_ray
from svdlab.experiments.runner import open_sweep, run_sweep
from svdlab.experiments.store import Store
from svdlab.models import load_model
from tests.conftest import make_image

SPEC = """
name = "{name}"
model = "{model}"
images = ["images/*.png"]
[grid]
motion_bucket_id = [40, 120, 200, 255]
[fixed]
steps = 2
[outputs]
format = "png"
"""


def write_spec(folder: Path, name: str = "grid", model: str = "tiny-random", images: int = 2) -> Path:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for i in range(images):
        make_image(i, 80, 60).save(folder / "images" / f"photo{i}.png")
    spec = folder / f"{name}.toml"
    spec.write_text(SPEC.format(name=name, model=model))
    return spec


def frames_by_key(runs: Path, name: str) -> dict[str, np.ndarray]:
    """Each done job's frames (F, H, W, 3) uint8, by job key, read from the PNG files the store points at."""
    frames = {}
    for row in Store(runs).results(name):
        assert row["status"] == "done"
        folder = runs / row["video"]
        frames[row["key"]] = np.stack([np.asarray(PIL.Image.open(path)) for path in sorted(folder.iterdir())])
    return frames


def sweep_workers_alive() -> list[int]:
    """Process ids of Ray actors running svdlab's SweepWorker on this machine."""
    alive = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"SweepWorker" in cmdline.read_bytes():
                alive.append(int(cmdline.parent.name))
        except OSError:
            continue
    return alive


# These run before the cluster below starts: nothing may be connected yet.


def test_without_ray_installed_the_flag_fails_in_one_line_naming_the_extra(tmp_path, monkeypatch):
    spec = write_spec(tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)
    result = CliRunner().invoke(
        app, ["sweep", str(spec), "--runs-dir", str(tmp_path / "runs"), "--ray", "local"]
    )
    assert result.exit_code == 2
    assert result.output.strip() == (
        'error: --ray needs Ray, which is not installed: pip install -e ".[ray]" (or pip install ray)'
    )
    assert not (tmp_path / "runs" / "grid").exists()


@pytest.mark.parametrize(
    ("address", "phrase"),
    [
        ("127.0.0.1:9", "cannot reach a Ray cluster at 127.0.0.1:9 (Connection refused)"),
        ("nowhere", "--ray nowhere is not a cluster address: use local, auto, HOST:PORT"),
    ],
)
def test_an_unreachable_address_fails_in_seconds_and_in_one_line(tmp_path, address, phrase):
    assert not ray.is_initialized()
    spec = write_spec(tmp_path)
    started = time.monotonic()
    result = CliRunner().invoke(
        app, ["sweep", str(spec), "--runs-dir", str(tmp_path / "runs"), "--ray", address]
    )
    assert result.exit_code == 2 and phrase in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert time.monotonic() - started < 30
    assert Store(tmp_path / "runs").results("grid") == []


@pytest.fixture(scope="module")
def cluster():
    """A local two-CPU Ray cluster for this module's tests."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_a_killed_actor_is_replaced_its_jobs_retried_and_the_frames_match_the_local_runner(tmp_path, cluster):
    local = open_sweep(
        write_spec(tmp_path / "a", images=1), tmp_path / "a" / "runs", device="cpu", dtype="float32"
    )
    assert run_sweep(local, progress=False) == 4
    expected = frames_by_key(tmp_path / "a" / "runs", "grid")

    sweep = open_sweep(
        write_spec(tmp_path / "b", images=1),
        tmp_path / "b" / "runs",
        batch_size=1,
        device="cpu",
        dtype="float32",
    )  # one unit of four jobs, made one at a time
    workers, killed = [], []

    def kill_the_first_worker(pid, video):
        workers.append(pid)
        if not killed:
            assert pid in sweep_workers_alive()  # (what the Ctrl-C test below looks for)
            killed.append(pid)
            os.kill(pid, signal.SIGKILL)  # mid-unit: it has three more jobs to make

    options = RayOptions(actors=2, unit_size=4)
    made = run_sweep_on_ray(sweep, options, progress=False, on_video=kill_the_first_worker)
    rows = Store(tmp_path / "b" / "runs").results("grid")
    assert made == 4 and len(rows) == 4 and all(row["status"] == "done" for row in rows)
    assert len({row["key"] for row in rows}) == 4
    assert workers.count(killed[0]) < 4 and len(set(workers)) >= 2  # the rest of its unit came from others
    made_on_ray = frames_by_key(tmp_path / "b" / "runs", "grid")
    assert made_on_ray.keys() == expected.keys()
    for key, frames in made_on_ray.items():  # the same frames: one actor thread rounds sums differently
        difference = np.abs(frames.astype(int) - expected[key])
        assert difference.max() <= 1 and (difference > 0).mean() < 0.001, (key, difference.max())


def test_a_cluster_without_the_resources_asked_for_fails_in_one_line(tmp_path, cluster):
    sweep = open_sweep(write_spec(tmp_path), tmp_path / "runs", device="cpu", dtype="float32")
    with pytest.raises(
        RayError, match="asks for 1 CPUs and 1 GPUs, but the whole cluster has 2 CPUs and 0 GPUs"
    ):
        run_sweep_on_ray(sweep, RayOptions(gpus=1), progress=False)
    with pytest.raises(RayError, match="asks for 3 CPUs and 0 GPUs, but the whole cluster has 2 CPUs"):
        run_sweep_on_ray(sweep, RayOptions(cpus=3), progress=False)
    assert Store(tmp_path / "runs").results("grid") == []


def test_a_model_the_workers_cannot_load_fails_in_one_line_and_records_nothing(tmp_path, cluster):
    folder = load_model("tiny-random", device="cpu", dtype="float32").save_pretrained(tmp_path / "model")
    sweep = open_sweep(
        write_spec(tmp_path, model=str(folder)), tmp_path / "runs", device="cpu", dtype="float32"
    )
    shutil.move(folder, tmp_path / "elsewhere")  # the driver has it loaded; the workers find nothing there
    with pytest.raises(
        RayError, match=f"the Ray workers cannot load model .*{folder.name}.*install it on every"
    ):
        run_sweep_on_ray(sweep, RayOptions(actors=1), progress=False)
    assert Store(tmp_path / "runs").results("grid") == []


def _ctrl_c_as_a_terminal() -> None:
    """In the driver before it starts: SIGINT delivered and at its default, as in a terminal, whatever this
    process inherited (a shell's background job ignores it)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_on_the_driver_stops_the_actors_and_keeps_what_was_finished(tmp_path):
    spec = write_spec(tmp_path, images=3)
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "svdlab", "sweep", str(spec), "--runs-dir", str(runs), "--quiet"]
    ray_options = ["--ray", "local", "--ray-actors", "1", "--batch-size", "1"]  # one result at a time
    driver = subprocess.Popen(
        [*command, *ray_options],
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        preexec_fn=_ctrl_c_as_a_terminal,
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (runs.exists() and Store(runs).results("grid")):
        time.sleep(0.1)
    driver.send_signal(signal.SIGINT)
    _, errors = driver.communicate(timeout=120)
    assert driver.returncode == 2
    assert errors.strip().splitlines()[-1].startswith("error: interrupted; finished jobs are saved in")
    assert not sweep_workers_alive()  # the driver stopped its actors (and the cluster it started)
    finished = [row for row in Store(runs).results("grid") if row["status"] == "done"]
    assert 1 <= len(finished) < 12
    rest = open_sweep(spec, runs, device="cpu", dtype="float32")  # the local runner resumes it
    assert len(rest.todo) == 12 - len(finished)
    assert run_sweep(rest, progress=False) == 12 - len(finished)
    assert sorted(row["status"] for row in Store(runs).results("grid")) == ["done"] * 12


def test_a_sweep_started_locally_is_finished_on_ray_with_only_the_rest_made(tmp_path, cluster):
    spec = write_spec(tmp_path, images=1)
    runs = tmp_path / "runs"
    first = open_sweep(spec, runs, device="cpu", dtype="float32")
    first.todo = first.todo[:2]  # as if the local run had been stopped after two videos
    assert run_sweep(first, progress=False) == 2
    args = ["sweep", str(spec), "--runs-dir", str(runs), "--quiet", "--ray", "local", "--ray-actors", "1"]
    result = CliRunner().invoke(app, args)  # (on this module's cluster, which the process already joined)
    assert result.exit_code == 0, result.output
    assert "grid: 2 videos made, 2 already done" in result.output
    assert (runs / "grid" / "report" / "index.html").is_file()
    rows = Store(runs).results("grid")
    assert len(rows) == 4 and all(row["status"] == "done" for row in rows)
    assert run_sweep_on_ray(open_sweep(spec, runs, device="cpu", dtype="float32"), progress=False) == 0
