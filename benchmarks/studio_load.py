"""Load on `svdlab serve`, on loopback: many clients submit jobs at once while a poller times status requests.

    python benchmarks/studio_load.py --jobs 100 --clients 20

starts a server on the tiny-random model in a temporary runs folder, submits the jobs (each client its
share, one request per job), and reports how long they took, that every job finished exactly once, and the
latency of GET /api/jobs/ID while the worker runs (median, p95, max). The studio's tests use its helpers.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import PIL.Image
import requests

# The smallest video the tiny model makes: 1 step, 2 frames of 32x32, no guidance.
LIGHT_PARAMS = {"steps": 1, "num_frames": 2, "width": 32, "height": 32, "min_guidance": 1, "max_guidance": 1}


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(runs_dir: Path, port: int, *extra: str, model: str = "tiny-random") -> subprocess.Popen:
    """`svdlab serve` in a subprocess; returns once it answers (or raises with its output)."""
    command = [sys.executable, "-m", "svdlab", "serve", "--model", model, "--runs-dir", str(runs_dir)]
    server = subprocess.Popen(
        [*command, "--port", str(port), *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"svdlab serve exited {server.returncode}: {server.stdout.read()}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/api/model", timeout=2).ok:
                return server
        except requests.ConnectionError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("svdlab serve did not answer within 180 s")


def upload(base: str, image: Path) -> str:
    """Upload an image; returns its id."""
    with image.open("rb") as file:
        answer = requests.post(f"{base}/api/images", files={"file": (image.name, file)}, timeout=30)
    answer.raise_for_status()
    return answer.json()["id"]


def wait_until_finished(base: str, ids: list[int], timeout: float) -> list[dict]:
    """Poll until every job has finished (done, failed or cancelled); returns them."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = {job["id"]: job for job in requests.get(f"{base}/api/jobs", timeout=30).json()["jobs"]}
        found = [jobs[i] for i in ids if i in jobs]
        if len(found) == len(ids) and all(job["status"] in ("done", "failed", "cancelled") for job in found):
            return found
        if time.monotonic() > deadline:
            states = [job["status"] for job in found]
            raise TimeoutError(f"{states.count('done')} of {len(ids)} jobs done after {timeout} s")
        time.sleep(0.25)


def submit_concurrently(base: str, image_id: str, jobs: int, clients: int, params: dict) -> list[int]:
    """Submit `jobs` one-video jobs (distinct seeds) from `clients` concurrent clients; returns their ids."""
    share = [jobs // clients + (index < jobs % clients) for index in range(clients)]

    def client(index: int) -> list[int]:
        made = []
        with requests.Session() as session:
            for n in range(share[index]):
                body = {"image": image_id, "params": {**params, "seed": index * 1000 + n}}
                answer = session.post(f"{base}/api/jobs", json=body, timeout=60)
                answer.raise_for_status()
                made += [job["id"] for job in answer.json()["jobs"]]
        return made

    with ThreadPoolExecutor(clients) as pool:
        return [job_id for made in pool.map(client, range(clients)) for job_id in made]


class StatusPoller:
    """Times GET /api/jobs/ID every 50 ms in a thread while it is open."""

    def __init__(self, base: str, job_id: int):
        self.url = f"{base}/api/jobs/{job_id}"
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> StatusPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                begin = time.perf_counter()
                try:
                    session.get(self.url, timeout=30).raise_for_status()
                except requests.ConnectionError:  # the server was killed
                    return
                self.latencies.append(time.perf_counter() - begin)
                time.sleep(0.05)

    def summary(self) -> dict:
        """Count, median, p95 and max of the latencies in milliseconds."""
        values = 1000 * np.array(self.latencies)
        return {
            "requests": len(values),
            "p50_ms": float(np.percentile(values, 50)),
            "p95_ms": float(np.percentile(values, 95)),
            "max_ms": float(values.max()),
        }


def main() -> None:
    """Run the load on a fresh server and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--model", default="tiny-random")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--params", default=json.dumps(LIGHT_PARAMS), help="JSON of each job's parameters")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        image = Path(folder) / "input.png"
        rng = np.random.default_rng(0)
        PIL.Image.fromarray((rng.random((4, 4, 3)) * 255).astype(np.uint8)).resize((64, 48)).save(image)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(
            Path(folder) / "runs", port, "--batch-size", str(args.batch_size), model=args.model
        )
        try:
            started = time.perf_counter()
            ids = submit_concurrently(
                base, upload(base, image), args.jobs, args.clients, json.loads(args.params)
            )
            submitted = time.perf_counter() - started
            with StatusPoller(base, ids[-1]) as poller:
                jobs = wait_until_finished(base, ids, timeout=3600)
            seconds = time.perf_counter() - started
        finally:
            server.terminate()
            server.wait(30)
    states = [job["status"] for job in jobs]
    latency = poller.summary()
    print(
        f"{args.jobs} jobs from {args.clients} clients on {args.model}: submitted in {submitted:.1f} s, all "
        f"finished in {seconds:.1f} s ({args.jobs / seconds:.2f} jobs/s); done {states.count('done')}, "
        f"distinct ids {len(set(ids))}"
    )
    print(
        f"GET /api/jobs/ID while the worker ran ({latency['requests']} requests): median "
        f"{latency['p50_ms']:.1f} ms, p95 {latency['p95_ms']:.1f} ms, max {latency['max_ms']:.1f} ms"
    )


if __name__ == "__main__":
    main()
