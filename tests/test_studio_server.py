"""`svdlab serve` as a real process: refusals at start, and 100 jobs from 20 clients through a kill -9."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import requests

from benchmarks.studio_load import (
    LIGHT_PARAMS,
    StatusPoller,
    free_port,
    start_server,
    submit_concurrently,
    upload,
    wait_until_finished,
)
from svdlab.experiments.store import Store
from tests.conftest import make_image


def _serve(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "svdlab", "serve", "--model", "tiny-random", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_serve_refuses_an_open_address_without_a_token_and_a_busy_port(tmp_path):
    exposed = _serve("--host", "0.0.0.0", "--runs-dir", str(tmp_path))
    assert exposed.returncode == 2
    assert "--token" in exposed.stderr and len(exposed.stderr.strip().splitlines()) == 1
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = _serve("--port", str(holder.getsockname()[1]), "--runs-dir", str(tmp_path))
    assert busy.returncode == 2
    assert "is in use" in busy.stderr and len(busy.stderr.strip().splitlines()) == 1
    no_port = _serve("--port", "70000", "--runs-dir", str(tmp_path))
    assert no_port.returncode == 2 and "1..65535" in no_port.stderr
    assert not (tmp_path / "svdlab.db").exists()


def test_100_jobs_from_20_clients_finish_once_through_a_kill_9(tmp_path):
    runs = tmp_path / "runs"
    image = tmp_path / "input.png"
    make_image(3, 32, 32).save(image)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(runs, port, "--batch-size", "8")
    try:
        ids = submit_concurrently(base, upload(base, image), 100, 20, LIGHT_PARAMS)
        assert len(set(ids)) == 100  # every request queued its own job before it returned
        with StatusPoller(base, ids[-1]) as poller:
            deadline = time.monotonic() + 300
            while True:
                jobs = requests.get(f"{base}/api/jobs", timeout=30).json()["jobs"]
                if sum(job["status"] == "done" for job in jobs) >= 30 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        os.kill(server.pid, signal.SIGKILL)
        server.wait(30)
    finally:
        server.kill()
    latency = poller.summary()
    print(f"status requests while the worker ran: {latency}")
    assert latency["requests"] >= 20 and latency["p95_ms"] < 1000
    before = {job["key"]: job for job in jobs if job["status"] == "done"}
    assert 30 <= len(before) < 100
    files_before = {
        key: (runs / job["video_url"].removeprefix("/files/")).stat().st_mtime_ns
        for key, job in before.items()
    }

    server = start_server(runs, port, "--batch-size", "8")  # the same runs folder: the queue goes on
    try:
        finished = wait_until_finished(base, ids, timeout=300)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(60)
    assert [job["status"] for job in finished] == ["done"] * 100
    assert len({job["key"] for job in finished}) == 100
    for job in finished:
        if job["key"] in before:  # finished before the kill: not made again
            assert job["finished"] == before[job["key"]]["finished"]
            path = runs / job["video_url"].removeprefix("/files/")
            assert path.stat().st_mtime_ns == files_before[job["key"]]
    store = Store(runs)
    try:
        rows = [row for name in [e["name"] for e in store.experiments()] for row in store.results(name)]
    finally:
        store.close()
    assert len(rows) == 100 and {row["status"] for row in rows} == {"done"}
    videos = [path for path in runs.rglob("*.mp4")]
    assert len(videos) == 100  # one file per job, none half-written left over
    assert not [path for path in runs.rglob("*") if ".tmp" in path.name]
