"""The fast-mode study: sampler x steps x guidance interval x cache interval against exact references.

On held-out synthetic scenes (the ones benchmarks/demo_objects.py uses), each setting's videos are made in
one engine run and compared with two references made from the same noise: the model's default settings
(Euler, Karras, the model's steps, guidance everywhere) and a converged one (Euler, 100 steps). For each
setting: wall time per video, UNet rows per video (a row is one video's UNet evaluation, conditional
or unconditional), PSNR / SSIM of every frame against both references, and the motion score against the
default's. A diffusers pipeline call at the default settings is timed as the speed baseline. Writes a
Markdown table, a CSV and a plot of speed against fidelity with the Pareto front marked into --out
(matplotlib: pip install -e ".[bench]"). Guidance intervals are given as fractions of the steps.
Run from the repository root, on a quiet machine (wall times are only meaningful there):

    python benchmarks/samplers.py                 # the full grid on demo, writes docs/sampler-study.*
    python benchmarks/samplers.py --quick --out /tmp/study   # a tiny grid, to check that it runs
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import platform
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from demo_objects import FIRST_SEED, SOLID_SPRITES

from svdlab.engine import Job, VideoEngine
from svdlab.engine.reference import diffusers_frames
from svdlab.engine.sampler import SAMPLERS
from svdlab.media import fit_image, frames_to_uint8
from svdlab.metrics import motion_score, psnr, ssim
from svdlab.models import load_model
from svdlab.params import make_params
from svdlab.training.tracking import trackable_scenes

REFERENCE_STEPS = 100
QUICK_REFERENCE_STEPS = 12
FULL_GRID = {
    "sampler": sorted(SAMPLERS),
    "steps": (4, 6, 8, 12, 16, 25),
    "guidance": ((0.0, 1.0), (0.0, 0.5), (0.2, 0.8)),
    "cache_interval": (1, 2, 3),
}
QUICK_GRID = {
    "sampler": ("euler", "dpmpp_2m"),
    "steps": (3,),
    "guidance": ((0.0, 1.0), (0.0, 0.5)),
    "cache_interval": (1, 2),
}


@dataclass
class Setting:
    """One point of the grid; `guidance` is the guided share of the steps as (start, end) fractions."""

    sampler: str
    steps: int
    guidance: tuple[float, float]
    cache_interval: int

    def interval(self) -> str | None:
        """The guidance interval in steps, or None for guidance at every step."""
        start = math.floor(self.guidance[0] * self.steps)
        end = max(start + 1, round(self.guidance[1] * self.steps))
        return None if (start, end) == (0, self.steps) else f"{start}:{end}"

    def label(self) -> str:
        """A short name for tables and the plot."""
        return f"{self.sampler} {self.steps} g{self.interval() or 'all'} c{self.cache_interval}"


def run_videos(model, images, **settings) -> tuple[list[torch.Tensor], float, int]:
    """Frames of one video per image with these settings, the seconds per video and UNet rows per video."""
    params = make_params(**settings).resolved(model)
    engine = VideoEngine(model)
    fitted = [fit_image(image, params.width, params.height) for image in images]
    jobs = [Job(image, params, tag=i) for i, image in enumerate(fitted)]
    started = time.perf_counter()
    results = sorted(engine.run(jobs), key=lambda result: result.job.tag)
    seconds = (time.perf_counter() - started) / len(images)
    return [result.frames for result in results], seconds, engine.counts["unet_rows"] // len(images)


def compared(videos: list[torch.Tensor], references: list[torch.Tensor]) -> tuple[float, float]:
    """Mean PSNR (dB, over each video's pooled frames) and mean per-frame SSIM against the references."""
    psnrs, ssims = [], []
    for video, reference in zip(videos, references):
        ours, theirs = frames_to_uint8(video), frames_to_uint8(reference)
        psnrs.append(psnr(np.concatenate(ours), np.concatenate(theirs)))
        ssims.append(np.mean([ssim(a, b) for a, b in zip(ours, theirs)]))
    return float(np.mean(psnrs)), float(np.mean(ssims))


def pareto(rows: list[dict]) -> list[dict]:
    """The rows no other row beats on both speed and PSNR against the converged reference."""
    return [
        row
        for row in rows
        if not any(
            other["s/video"] <= row["s/video"]
            and other["psnr_ref"] >= row["psnr_ref"]
            and (other["s/video"], other["psnr_ref"]) != (row["s/video"], row["psnr_ref"])
            for other in rows
        )
    ]


def write_table(rows: list[dict], header: list[str], path: Path) -> None:
    """The study as Markdown: how it was measured, then one row per setting (Pareto rows marked *)."""
    columns = list(rows[0])
    lines = [*header, "", "| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    for row in rows:
        cells = [value if isinstance(value, str) else f"{value:.4g}" for value in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    path.write_text("\n".join(lines) + "\n")


def write_plot(
    rows: list[dict], front: list[dict], baseline_s: float, reference_steps: int, path: Path
) -> None:
    """Seconds per video against PSNR to the converged reference, the Pareto front joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5))
    for sampler in sorted({row["sampler"] for row in rows}):
        mine = [row for row in rows if row["sampler"] == sampler]
        axes.scatter([r["s/video"] for r in mine], [r["psnr_ref"] for r in mine], label=sampler, s=18)
    ordered = sorted(front, key=lambda row: row["s/video"])
    axes.plot([r["s/video"] for r in ordered], [r["psnr_ref"] for r in ordered], "k--", label="Pareto front")
    axes.axvline(baseline_s, color="grey", linestyle=":", label="diffusers, defaults")
    axes.set_xlabel("seconds per video")
    axes.set_ylabel(f"PSNR against Euler {reference_steps} steps (dB)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def cpu_name() -> str:
    """This machine's CPU model, from /proc/cpuinfo where there is one."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    """Run the grid and write the table, CSV and plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo", help="model name or folder")
    parser.add_argument("--scenes", type=int, default=4, help="held-out scenes")
    parser.add_argument(
        "--quick", action="store_true", help="a tiny grid, one scene, a 12-step reference: to check it runs"
    )
    parser.add_argument("--out", type=Path, default=Path("docs"), help="folder for sampler-study.*")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    grid = QUICK_GRID if args.quick else FULL_GRID
    model = load_model(args.model, device="cpu", dtype="float32")
    scenes = trackable_scenes(SOLID_SPRITES, 1 if args.quick else args.scenes, FIRST_SEED)
    images = [PIL.Image.fromarray(clip.frames[0]) for clip in scenes]

    default, default_s, default_rows = run_videos(model, images)
    reference_steps = QUICK_REFERENCE_STEPS if args.quick else REFERENCE_STEPS
    reference, _, _ = run_videos(model, images, steps=reference_steps)
    default_motion = float(np.mean([motion_score(video) for video in default]))
    pipe = model.pipeline()
    pipe.set_progress_bar_config(disable=True)
    params = make_params().resolved(model)
    started = time.perf_counter()
    for image in images:
        diffusers_frames(pipe, fit_image(image, params.width, params.height), params)
    baseline_s = (time.perf_counter() - started) / len(images)

    rows = []
    for values in itertools.product(*grid.values()):
        setting = Setting(*values)
        videos, seconds, unet_rows = run_videos(
            model,
            images,
            sampler=setting.sampler,
            steps=setting.steps,
            guidance_interval=setting.interval(),
            cache_interval=setting.cache_interval,
        )
        psnr_default, ssim_default = compared(videos, default)
        psnr_ref, ssim_ref = compared(videos, reference)
        motion = float(np.mean([motion_score(video) for video in videos]))
        rows.append(
            {
                "setting": setting.label(),
                "sampler": setting.sampler,
                "s/video": seconds,
                "speed-up vs diffusers": baseline_s / seconds,
                "unet rows/video": unet_rows,
                "psnr_default": psnr_default,
                "ssim_default": ssim_default,
                "psnr_ref": psnr_ref,
                "ssim_ref": ssim_ref,
                "motion/default": motion / default_motion if default_motion else math.nan,
            }
        )
        print(rows[-1]["setting"], f"{seconds:.2f} s/video, {psnr_ref:.2f} dB to the reference", flush=True)
    front = pareto(rows)
    for row in rows:
        row["pareto"] = "*" if row in front else ""
    default_ref, _ = compared(default, reference)
    header = [
        f"# Fast-mode study: {model.name}, {len(images)} held-out scene(s), seeds {[c.seed for c in scenes]}",
        "",
        f"CPU: {cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}, float32.",
        f"Defaults (Euler, Karras, {params.steps} steps): {default_s:.3f} s/video, "
        f"{default_rows} UNet rows/video, PSNR {default_ref:.2f} dB to Euler {reference_steps}; "
        f"diffusers' pipeline at the defaults: {baseline_s:.3f} s/video.",
        "Guidance intervals are in steps (START:END, END excluded); * marks the Pareto front (speed vs PSNR "
        "to the converged reference).",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    write_table(rows, header, args.out / "sampler-study.md")
    with open(args.out / "sampler-study.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    write_plot(rows, front, baseline_s, reference_steps, args.out / "sampler-study.png")
    print(f"wrote {args.out}/sampler-study.md, .csv and .png")


if __name__ == "__main__":
    main()
