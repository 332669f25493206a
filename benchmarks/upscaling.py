"""Video upscaling measured against the truth: held-out synthetic sprite videos rendered at 128x128 and
shrunk to 64x64 by area averaging (as the renderer itself makes its frames from larger drawings) are
upscaled back 2x by each method and compared with the 128x128 frames.

    python benchmarks/upscaling.py [--clips 8] [--model demo-upscaler]
        [--sr-model FILE | --train-sr STEPS [--save-sr FILE]]

prints PSNR and SSIM against the truth, and the temporal metrics `flicker` and `warp_error` (the truth's
own are printed too: motion makes some), for the learned video upscaler (windows of frames), the same
network run frame by frame (a per-frame upscaler, each frame with its own seed), a per-frame
super-resolution model through spandrel (--sr-model, or with --train-sr a Real-ESRGAN Compact this script
trains for that many steps on the demo upscaler's training scenes, seeds 5000 on, and saves as
safetensors, to --save-sr if given: tests/data/compact-2x-16000.safetensors was made so with 16000 steps),
bicubic and lanczos. Seeds from 90,000 on, which no training run of svdlab uses.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from svdlab.metrics.fidelity import psnr, ssim
from svdlab.metrics.temporal import flicker, warp_error
from svdlab.post.upscale import make_upscaler
from svdlab.training.synthetic import render_sprite_clip

HELD_OUT_SEED = 90_000
SCALE = 2


def held_out_pairs(count: int, frames: int = 8, size: int = 128) -> list[tuple[np.ndarray, np.ndarray]]:
    """(low, high) uint8 videos (F, size / 2, size / 2, 3) and (F, size, size, 3) of the first `count`
    held-out scenes: each rendered at `size` and shrunk 2x by area averaging."""
    pairs = []
    for seed in range(HELD_OUT_SEED, HELD_OUT_SEED + count):
        high = render_sprite_clip(seed, width=size, height=size, frames=frames).frames
        low = high.reshape(frames, size // 2, 2, size // 2, 2, 3).mean(axis=(2, 4))
        pairs.append((np.rint(low).astype(np.uint8), high))
    return pairs


def per_frame(model, low: np.ndarray, seed: int = 0) -> np.ndarray:
    """The learned upscaler, with its defaults, run on each frame alone (frame i drawn with seed + i): a
    per-frame upscaler."""
    upscalers = (make_upscaler("model", SCALE, model=model, seed=seed + i) for i in range(len(low)))
    return np.concatenate([upscaler(frame[None]) for upscaler, frame in zip(upscalers, low)])


def train_compact(steps: int, path: str, seed: int = 5000, batch: int = 16) -> str:
    """A 2x Real-ESRGAN Compact (spandrel's architecture) trained with an L1 loss on 64x64 crops of sprite
    frames (scenes from `seed` on, rendered at 128x128 and shrunk 2x), saved as safetensors at `path`."""
    from safetensors.torch import save_file

    from svdlab.post.sr_model import import_spandrel

    import_spandrel()
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    frames = torch.cat(
        [
            torch.from_numpy(render_sprite_clip(s, width=128, height=128, frames=4).frames)
            for s in range(seed, seed + 64)
        ]
    )
    frames = frames.permute(0, 3, 1, 2).float().div(255.0)
    net = Compact(num_in_ch=3, num_out_ch=3, num_feat=32, num_conv=8, upscale=SCALE)
    optimizer = torch.optim.Adam(net.parameters(), lr=5e-4)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        picks = torch.randint(0, len(frames), (batch,), generator=generator)
        top, left = (int(v) * 2 for v in torch.randint(0, 33, (2,), generator=generator))
        high = frames[picks, :, top : top + 64, left : left + 64]
        low = torch.nn.functional.avg_pool2d(high, SCALE)
        loss = (net(low) - high).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    save_file(net.state_dict(), path)
    return path


def scores(made: list[np.ndarray], truth: list[np.ndarray]) -> dict[str, float]:
    """Mean PSNR and SSIM of every frame against the truth, and mean flicker and warp error per video."""
    return {
        "psnr": float(np.mean([psnr(a, b) for video, high in zip(made, truth) for a, b in zip(video, high)])),
        "ssim": float(np.mean([ssim(a, b) for video, high in zip(made, truth) for a, b in zip(video, high)])),
        "flicker": float(np.mean([flicker(video) for video in made])),
        "warp_error": float(np.mean([warp_error(video) for video in made])),
    }


def upscaled_by(method: str, pairs: list, model=None, sr_model=None) -> tuple[list[np.ndarray], float]:
    """Every pair's low video upscaled by a method ("per-frame": the learned upscaler frame by frame), and
    the seconds per frame."""
    started = time.perf_counter()
    if method == "per-frame":
        made = [per_frame(model, low) for low, _ in pairs]
    else:
        upscaler = make_upscaler(
            method,
            SCALE,
            model=model if method == "model" else None,
            sr_model=sr_model if method == "sr" else None,
        )
        made = [upscaler(low) for low, _ in pairs]
    return made, (time.perf_counter() - started) / sum(len(low) for low, _ in pairs)


def main() -> None:
    """Print the table."""
    from svdlab.models.upscaler import load_upscaler

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--model", default="demo-upscaler", help="a learned 2x upscaler")
    parser.add_argument("--sr-model", default=None, help="a 2x super-resolution file spandrel knows")
    parser.add_argument(
        "--train-sr", type=int, default=0, help="train a Compact SR model for this many steps"
    )
    parser.add_argument("--save-sr", default=None, help="where --train-sr saves its model")
    args = parser.parse_args()
    if args.train_sr:
        import tempfile

        path = args.save_sr or f"{tempfile.mkdtemp()}/compact-2x.safetensors"
        args.sr_model = train_compact(args.train_sr, path)
    pairs = held_out_pairs(args.clips)
    model = load_upscaler(args.model, device="cpu")
    truth = [high for _, high in pairs]
    methods = ["model", "per-frame", *(["sr"] if args.sr_model else []), "bicubic", "lanczos"]
    print(f"{args.clips} held-out sprite videos, 8 frames, 64x64 -> 128x128, against the 128x128 truth")
    print(f"CPU, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print("| method | PSNR dB | SSIM | flicker | warp error | seconds per frame |")
    print("|---|---|---|---|---|---|")
    truth_scores = scores(truth, truth)
    for method in methods:
        made, seconds = upscaled_by(method, pairs, model, args.sr_model)
        row = scores(made, truth)
        print(
            f"| {method} | {row['psnr']:.2f} | {row['ssim']:.4f} | {row['flicker']:.3f} | "
            f"{row['warp_error']:.5f} | {seconds:.3f} |"
        )
    print(f"| (truth) | | | {truth_scores['flicker']:.3f} | {truth_scores['warp_error']:.5f} | |")


if __name__ == "__main__":
    main()
