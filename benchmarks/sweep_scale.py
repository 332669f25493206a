"""Sweep scale: 50 and 500 jobs on the tiny model through `svdlab sweep`; peak memory must stay flat
(videos stream to disk, nothing accumulates) and time per job must not grow. With --ray, each size runs
through the local runner and through 1 and 2 actors of a local Ray cluster (started by the sweep, so its
start-up counts), and the peak is the driver's (the process that writes the store).

    python benchmarks/sweep_scale.py [--steps 2] [--sizes 50 500]
    python benchmarks/sweep_scale.py --ray --sizes 50        # needs pip install -e ".[ray]"
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


def run(jobs: int, steps: int, batch_size: int, folder: Path, actors: int = 0) -> tuple[float, int]:
    """Wall seconds and peak resident memory of one `svdlab sweep` process of `jobs` jobs (on `actors` local
    Ray actors, if any)."""
    folder = folder / f"{jobs}-{actors}"
    folder.mkdir()
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
        *(["--ray", "local", "--ray-actors", str(actors)] if actors else []),
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
    parser.add_argument("--ray", action="store_true", help="also through 1 and 2 local Ray actors")
    args = parser.parse_args()
    print(f"{'jobs':>5} {'runner':>14} {'wall s':>8} {'s/job':>7} {'jobs/s':>7} {'peak RSS MB':>12}")
    with tempfile.TemporaryDirectory() as folder:
        for jobs in args.sizes:
            for actors in (0, 1, 2) if args.ray else (0,):
                seconds, peak = run(jobs, args.steps, args.batch_size, Path(folder), actors)
                runner = f"ray, {actors} actor{'s' if actors > 1 else ''}" if actors else "local"
                print(
                    f"{jobs:>5} {runner:>14} {seconds:>8.1f} {seconds / jobs:>7.3f} {jobs / seconds:>7.2f} "
                    f"{peak / 2**20:>12.1f}"
                )


if __name__ == "__main__":
    main()
