"""Side-by-side: a loop of diffusers' StableVideoDiffusionPipeline calls vs svdlab, same model, one process.

W1, the classic sweep shape: 6 images x motion buckets 120, 180, 240, 300, 360, noise 0.1, seed 42.
W2: one video at the model's defaults.
Both sides get the same fitted images and settings; the script checks that the frames agree and prints
wall time, peak memory and the ratio diffusers / svdlab (above 1: svdlab is faster).

    python benchmarks/vs_diffusers.py --repeat 3            # tiny-random on the CPU (offline)
    python benchmarks/vs_diffusers.py --model svd-xt --device cuda --dtype float16
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import torch
from memory import PeakMemory

from svdlab.engine import Job, VideoEngine
from svdlab.engine.reference import diffusers_frames
from svdlab.media import fit_image, load_image
from svdlab.models import load_model
from svdlab.params import make_params

IMAGES = sorted((Path(__file__).resolve().parent.parent / "examples" / "images").glob("*.png"))
W1_BUCKETS = (120, 180, 240, 300, 360)


def workloads(model, steps: int | None):
    """The jobs of W1 and W2 as (name, [(image, params)])."""
    defaults = make_params(steps=steps).resolved(model)
    fitted = [fit_image(load_image(path), defaults.width, defaults.height) for path in IMAGES[:6]]
    w1 = [
        (
            image,
            make_params(motion_bucket_id=bucket, noise_aug_strength=0.1, seed=42, steps=steps).resolved(
                model
            ),
        )
        for image in fitted
        for bucket in W1_BUCKETS
    ]
    return [("W1 6 images x 5 buckets", w1), ("W2 one video, defaults", [(fitted[0], defaults)])]


def run_diffusers(pipe, jobs):
    """One pipeline call per job, as the classic scripts loop."""
    return [diffusers_frames(pipe, image, params) for image, params in jobs]


def run_svdlab(model, jobs):
    """All jobs through one VideoEngine (batch size measured, caches shared)."""
    results = VideoEngine(model).run([Job(image, p, tag=i) for i, (image, p) in enumerate(jobs)])
    ordered = sorted(results, key=lambda result: result.job.tag)
    return [result.frames for result in ordered]


def timed(fn, device):
    with PeakMemory(device) as memory:
        start = time.perf_counter()
        value = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    return value, seconds, memory.peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-random")
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per side; the fastest counts")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    model = load_model(args.model, device=args.device, dtype=args.dtype)
    pipe = model.pipeline()
    pipe.set_progress_bar_config(disable=True)
    cases = workloads(model, args.steps)
    run_diffusers(pipe, cases[1][1])  # warm both paths up once
    run_svdlab(model, cases[1][1])
    tolerance = 1e-4 if model.dtype == torch.float32 else 2e-2
    print(
        f"model {model.name} on {model.device} ({model.dtype}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"{'workload':26} {'videos':>6} {'diffusers s':>12} {'svdlab s':>9} {'ratio':>6} "
        f"{'diffusers MB':>13} {'svdlab MB':>10} {'max |diff|':>11}"
    )
    for name, jobs in cases:
        ref_runs, our_runs = [], []
        for _ in range(args.repeat):  # alternate the sides so that drifting machine load hits both
            ref_runs.append(timed(lambda jobs=jobs: run_diffusers(pipe, jobs), model.device))
            our_runs.append(timed(lambda jobs=jobs: run_svdlab(model, jobs), model.device))
        reference, ref_s, ref_mem = min(ref_runs, key=lambda run: run[1])
        ours, our_s, our_mem = min(our_runs, key=lambda run: run[1])
        diff = max((a - b).abs().max().item() for a, b in zip(reference, ours))
        verdict = "agree" if diff <= tolerance else "DIFFER"
        print(
            f"{name:26} {len(jobs):>6} {ref_s:>12.2f} {our_s:>9.2f} {ref_s / our_s:>5.2f}x "
            f"{ref_mem / 2**20:>13.1f} {our_mem / 2**20:>10.1f} {diff:>11.2e} {verdict}"
        )


if __name__ == "__main__":
    main()
