"""Frame interpolation measured against the true frames: every 2nd or 4th frame of held-out synthetic
sprite videos is kept, the others are made again by each method and compared with the originals.

    python benchmarks/interpolation.py [--clips 20] [--model demo-context | --model none]

prints PSNR (pooled squared error) and SSIM of the in-between frames for the context model (windows of
its frames with every 2nd or 4th given), flow, blend (cross-fade) and repeat (the nearest kept frame), at
2x and 4x. The clips come from seeds from 90,000 on, which no training
run of svdlab uses.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from svdlab.metrics.fidelity import ssim
from svdlab.models import load_model
from svdlab.params import make_params
from svdlab.post import INTERPOLATION_METHODS, interpolate_frames
from svdlab.post.learned import model_interpolate
from svdlab.training.synthetic import moving_sprite_clips

HELD_OUT_SEED = 90_000
METHODS = (*INTERPOLATION_METHODS, "repeat")


def remade(frames: np.ndarray, factor: int, method: str, model=None) -> np.ndarray:
    """The video remade from every `factor`-th frame by `method` ("model": the context `model` at its
    defaults, seed 0): (F - 1) // factor * factor + 1 frames."""
    kept = frames[::factor]
    if method == "repeat":
        count = (len(kept) - 1) * factor + 1
        return kept[[(index + factor // 2) // factor for index in range(count)]]
    if method == "model":
        return model_interpolate(kept, factor, model, make_params(seed=0).resolved(model))
    return interpolate_frames(kept, factor, method)


def scores(clips: list[np.ndarray], factor: int, method: str, model=None) -> dict[str, float]:
    """PSNR (of the squared error pooled over every in-between frame: a frame remade exactly has no finite
    PSNR of its own) and mean SSIM of the remade in-between frames against the true ones, and the seconds
    the method took per new frame."""
    errors, ssims, seconds = [], [], 0.0
    for frames in clips:
        started = time.perf_counter()
        made = remade(frames, factor, method, model)
        seconds += time.perf_counter() - started
        for index in range(len(made)):
            if index % factor:
                errors.append(np.mean(np.square(made[index].astype(np.float64) - frames[index])))
                ssims.append(ssim(made[index], frames[index]))
    return {
        "psnr": float(10 * np.log10(255**2 / np.mean(errors))),
        "ssim": float(np.mean(ssims)),
        "seconds": seconds / len(ssims),
    }


def held_out_clips(count: int, frames: int = 17) -> list[np.ndarray]:
    """The first `count` moving sprite videos (64x64) from the held-out seeds."""
    return moving_sprite_clips(count, frames, HELD_OUT_SEED)


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--model", default="demo-context", help="a context model, or none")
    args = parser.parse_args()
    clips = held_out_clips(args.clips)
    model = None if args.model == "none" else load_model(args.model, device="cpu")
    methods = METHODS if model is None else ("model", *METHODS)
    print(
        f"{args.clips} held-out moving sprite videos, 17 frames of 64x64; in-between frames against the truth"
    )
    print("| factor | method | PSNR dB | SSIM | seconds per new frame |")
    print("|---|---|---|---|---|")
    for factor in (2, 4):
        for method in methods:
            result = scores(clips, factor, method, model)
            print(
                f"| {factor}x | {method} | {result['psnr']:.2f} | {result['ssim']:.3f} | "
                f"{result['seconds']:.4f} |"
            )


if __name__ == "__main__":
    main()
