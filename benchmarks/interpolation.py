"""Frame interpolation measured against the true frames: every 2nd or 4th frame of held-out synthetic
sprite videos is kept, the others are made again by each method and compared with the originals.

    python benchmarks/interpolation.py [--clips 20]

prints PSNR (pooled squared error) and SSIM of the in-between frames for flow, blend (cross-fade) and
repeat (the nearest kept frame), at 2x and 4x. The clips come from seeds from 90,000 on, which no training
run of svdlab uses.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from svdlab.metrics.fidelity import ssim
from svdlab.post import INTERPOLATION_METHODS, interpolate_frames
from svdlab.training.synthetic import render_sprite_clip

HELD_OUT_SEED = 90_000
METHODS = (*INTERPOLATION_METHODS, "repeat")


def remade(frames: np.ndarray, factor: int, method: str) -> np.ndarray:
    """The video remade from every `factor`-th frame by `method`: (F - 1) // factor * factor + 1 frames."""
    kept = frames[::factor]
    if method == "repeat":
        count = (len(kept) - 1) * factor + 1
        return kept[[(index + factor // 2) // factor for index in range(count)]]
    return interpolate_frames(kept, factor, method)


def scores(clips: list[np.ndarray], factor: int, method: str) -> dict[str, float]:
    """PSNR (of the squared error pooled over every in-between frame: a frame remade exactly has no finite
    PSNR of its own) and mean SSIM of the remade in-between frames against the true ones, and the seconds
    the method took per new frame."""
    errors, ssims, seconds = [], [], 0.0
    for frames in clips:
        started = time.perf_counter()
        made = remade(frames, factor, method)
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
    """The first `count` sprite videos (64x64) from held-out seeds that move (a still one is remade
    exactly by every method)."""
    clips, seed = [], HELD_OUT_SEED
    while len(clips) < count:
        clip = render_sprite_clip(seed, frames=frames).frames
        if np.any(clip[0] != clip[-1]):
            clips.append(clip)
        seed += 1
    return clips


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=20)
    args = parser.parse_args()
    clips = held_out_clips(args.clips)
    print(
        f"{args.clips} held-out moving sprite videos, 17 frames of 64x64; in-between frames against the truth"
    )
    print("| factor | method | PSNR dB | SSIM | seconds per new frame |")
    print("|---|---|---|---|---|")
    for factor in (2, 4):
        for method in METHODS:
            result = scores(clips, factor, method)
            print(
                f"| {factor}x | {method} | {result['psnr']:.2f} | {result['ssim']:.3f} | "
                f"{result['seconds']:.4f} |"
            )


if __name__ == "__main__":
    main()
