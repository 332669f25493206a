"""Do a model's objects move as wholes? Tracked sprites, dissolution and fidelity per motion bucket.

On held-out synthetic scenes of the demo's world with solid sprites (seeds 91000 on, kept where the
tracker follows the rendered truth), each video of each bucket is measured: the sprites' tracked
displacement (px/frame), the smallest share of its frame-0 area a sprite keeps, how many are lost, the
dissolution and motion score; then frame-0 fidelity and motion over noise_aug_strength. `--sheet` also
writes a contact sheet: the first scene's input and frames (columns) at each bucket (rows). Run from the
repository root:

    python benchmarks/demo_objects.py [--model demo] [--scenes 6] [--sheet docs/demo-sheet.png]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import PIL.Image

from svdlab.api import generate
from svdlab.media import frames_to_uint8
from svdlab.metrics import measure_video
from svdlab.models import load_model
from svdlab.training.synthetic import DEMO_SCENES
from svdlab.training.tracking import track_sprites, trackable_scenes

BUCKETS = (20, 60, 120, 180, 240)
NOISE_LEVELS = (0.02, 0.1, 0.2, 0.4)
# the scenes the demo learnt to move (svdlab.training.synthetic.DEMO_SCENES), with solid sprites
SOLID_SPRITES = replace(DEMO_SCENES, fills=("solid",))
FIRST_SEED = 91_000


def bucket_row(model, scenes, bucket: int) -> dict[str, float]:
    """Tracked and measured figures of the model's videos of `scenes` at one motion bucket."""
    images = [PIL.Image.fromarray(clip.frames[0]) for clip in scenes]
    videos = generate(images, model, motion_bucket_id=bucket)
    tracks, metrics = [], []
    for video, clip, image in zip(videos, scenes, images):
        frames = frames_to_uint8(video.frames)
        tracks += track_sprites(frames, clip.labels[0])
        metrics.append(measure_video(frames, image))
    return {
        "px/frame": float(np.mean([track.displacement_per_frame() for track in tracks])),
        "min area": min(track.smallest_area_share() for track in tracks),
        "lost": sum(track.lost for track in tracks),
        "dissolution": float(np.mean([m["dissolution"] for m in metrics])),
        "max dissolution": max(m["dissolution"] for m in metrics),
        "motion": float(np.mean([m["motion_score"] for m in metrics])),
        "warp": float(np.mean([m["warp_error"] for m in metrics])),
    }


def noise_row(model, scenes, level: float) -> dict[str, float]:
    """Frame-0 fidelity and motion of the model's videos of `scenes` at one noise_aug_strength."""
    images = [PIL.Image.fromarray(clip.frames[0]) for clip in scenes]
    videos = generate(images, model, noise_aug_strength=level)
    metrics = [measure_video(video.frames, image) for video, image in zip(videos, images)]
    keys = ("psnr_first", "ssim_first", "motion_score")
    return {key: float(np.mean([m[key] for m in metrics])) for key in keys}


def contact_sheet(model, clip, path: str, zoom: int = 2, gap: int = 2) -> None:
    """One scene's input, then its frames at each bucket, one row per bucket, as a PNG."""
    image = PIL.Image.fromarray(clip.frames[0])
    rows = [frames_to_uint8(generate([image], model, motion_bucket_id=b)[0].frames) for b in BUCKETS]
    height, width = rows[0].shape[1:3]
    columns = 1 + len(rows[0])
    sheet = np.full((len(rows) * (height + gap) - gap, columns * (width + gap) - gap, 3), 255, dtype=np.uint8)
    for row, frames in enumerate(rows):
        for column, frame in enumerate([clip.frames[0], *frames]):
            top, left = row * (height + gap), column * (width + gap)
            sheet[top : top + height, left : left + width] = frame
    picture = PIL.Image.fromarray(sheet)
    picture.resize((picture.width * zoom, picture.height * zoom), PIL.Image.NEAREST).save(path)


def print_table(title: str, key: str, rows: dict) -> None:
    """Rows of figures as a Markdown table."""
    columns = list(next(iter(rows.values())))
    print(f"\n{title}\n\n| {key} | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for value, row in rows.items():
        print(f"| {value} | " + " | ".join(f"{row[c]:.3g}" for c in columns) + " |")


def main() -> None:
    """Measure one model and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo", help="model name or folder")
    parser.add_argument("--scenes", type=int, default=6, help="held-out scenes")
    parser.add_argument("--sheet", help="also write a contact sheet of the first scene to this PNG")
    args = parser.parse_args()
    started = time.perf_counter()
    model = load_model(args.model, device="cpu", dtype="float32")
    scenes = trackable_scenes(SOLID_SPRITES, args.scenes, FIRST_SEED)
    sprites = sum(len(clip.speeds) for clip in scenes)
    print(f"{args.model}: {len(scenes)} scenes (seeds {[clip.seed for clip in scenes]}), {sprites} sprites")
    print_table("By motion bucket", "bucket", {b: bucket_row(model, scenes, b) for b in BUCKETS})
    print_table("By noise_aug_strength", "noise", {n: noise_row(model, scenes, n) for n in NOISE_LEVELS})
    if args.sheet:
        contact_sheet(model, scenes[0], args.sheet)
        print(f"\ncontact sheet (rows: buckets {', '.join(map(str, BUCKETS))}) in {args.sheet}")
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
