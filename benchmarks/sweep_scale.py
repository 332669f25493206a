"""Sweep scale: 50 and 500 jobs on the tiny model through `svdlab sweep`; peak memory must stay flat
(videos stream to disk, nothing accumulates) and time per job must not grow.

    python benchmarks/sweep_scale.py [--steps 2] [--sizes 50 500]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from memory import PeakMemory

IMAGE = Path(__file__).resolve().parent.parent / "examples" / "images" / "mountains.png"
BUCKETS = (20, 60, 120, 180, 240)

SPEC = """name = "scale-{jobs}"
model = "tiny-random"
images = ["{image}"]
[grid]
motion_bucket_id = {buckets}
seed = {seeds}
[fixed]
steps = {steps}
"""


def run(jobs: int, steps: int, batch_size: int, folder: Path) -> tuple[float, int]:
    """Wall seconds and peak resident memory of one `svdlab sweep` process of `jobs` jobs."""
    spec = folder / f"scale-{jobs}.toml"
    seeds = list(range(jobs // len(BUCKETS)))
    spec.write_text(SPEC.format(jobs=jobs, image=IMAGE, buckets=list(BUCKETS), seeds=seeds, steps=steps))
    command = [
        sys.executable,
        "-c",
        "from svdlab.cli import app; app()",
        "sweep",
        str(spec),
        "--runs-dir",
        str(folder / "runs"),
        "--batch-size",
        str(batch_size),
        "--quiet",
    ]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    with PeakMemory(pid=process.pid) as memory:
        if process.wait() != 0:
            raise SystemExit(f"sweep of {jobs} jobs failed with exit code {process.returncode}")
    return time.perf_counter() - start, memory.peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--batch-size", type=int, default=2, help="the same pack size for every run")
    args = parser.parse_args()
    print(f"{'jobs':>5} {'wall s':>8} {'s/job':>7} {'peak RSS MB':>12}")
    with tempfile.TemporaryDirectory() as folder:
        for jobs in args.sizes:
            seconds, peak = run(jobs, args.steps, args.batch_size, Path(folder))
            print(f"{jobs:>5} {seconds:>8.1f} {seconds / jobs:>7.3f} {peak / 2**20:>12.1f}")


if __name__ == "__main__":
    main()
