"""Words for the report: what each swept parameter does, how to read each metric, what the model is, and a
summary of how the metrics moved across the sweep."""

from __future__ import annotations

import math
from dataclasses import dataclass

PARAMETER_NOTES: dict[str, str] = {
    "motion_bucket_id": "How much motion SVD is asked for (0..255, trained around 127): higher buckets move "
    "more, and past the training range objects tend to smear.",
    "noise_aug_strength": "Noise added to the input image before it conditions the video (trained "
    "~0.02..0.15): more noise frees the video from the image, so motion grows and frame 0 drifts "
    "from the input.",
    "fps": "The frame rate the model is conditioned on (trained 5..30) and the videos play at: a lower fps "
    "asks for larger steps between frames.",
    "num_frames": "How many frames each video has; the temporal layers see them all at once.",
    "steps": "Sampler steps: more steps follow the denoising path more closely and cost time linearly.",
    "min_guidance": "Classifier-free guidance at the first frame; SVD ramps it linearly to max_guidance "
    "at the last frame. 1 means no guidance.",
    "max_guidance": "Classifier-free guidance at the last frame: higher sticks closer to the input image's "
    "content, too high over-saturates.",
    "guidance": "Classifier-free guidance: how strongly each step follows the image over the unconditioned "
    "model.",
    "sampler": "The solver that walks the noise schedule; samplers differ in the steps they need and in "
    "detail.",
    "schedule": "How the noise levels are spaced between the highest and the lowest (karras, exponential).",
    "guidance_interval": "The steps (START:END) that run classifier-free guidance; the others skip the "
    "unconditional branch, which saves UNet work.",
    "loop": "Ends the video on its first image and leaves that last frame out, so that it plays round "
    "without a seam (a one-frame model does this by time-reversal fusion, at twice the UNet calls).",
    "cache_interval": "How often the UNet's deep blocks run; in between their last output is reused "
    "(1: every call, exact).",
    "seed": "The random seed of a video's noise: the same seed and settings give the same frames.",
    "width": "Video width in pixels; the model was trained at one size and may degrade away from it.",
    "height": "Video height in pixels; the model was trained at one size and may degrade away from it.",
    "size": "Video size WIDTHxHEIGHT; the model was trained at one size and may degrade away from it.",
    "fit": "How the input image meets the video size: crop (cut the overflow), pad (letterbox) or stretch.",
    "decode_chunk_size": "Frames the VAE decodes at once: fewer saves memory, but the temporal decoder then "
    "sees shorter clips.",
    "interpolate": "New frames between the generated ones after sampling: flow, blend or model (the "
    "generating context model; flow on a one-frame model).",
    "interpolate_factor": "How many times the frame rate grows by interpolation (2 or 4).",
    "upscale": "How many times width and height grow after interpolation (1: not upscaled; 2 or 4).",
    "upscale_method": "How to upscale: model (a learned video upscaler), sr (a super-resolution file), "
    "bicubic or lanczos.",
    "upscale_model": "The learned upscaler for upscale_method model (default: the model's own).",
    "sr_model": "The super-resolution weights (.safetensors) for upscale_method sr.",
}


@dataclass(frozen=True)
class MetricNote:
    """How to read one metric: what it measures, which direction is better, and its name in a summary."""

    meaning: str
    better: str | None  # "higher", "lower", or None where neither direction is better
    phrase: str
    ratio: bool  # summarise changes as "rises 3x" (True) or as a difference in the unit (False)


METRIC_NOTES: dict[str, MetricNote] = {
    "motion_score": MetricNote(
        "mean optical-flow magnitude: how much the video moves", None, "motion", ratio=True
    ),
    "flicker": MetricNote("frame-to-frame change of mean brightness", "lower", "flicker", ratio=True),
    "warp_error": MetricNote(
        "how badly each frame matches its neighbour moved along the flow: objects breaking up",
        "lower",
        "warp error",
        ratio=True,
    ),
    "dissolution": MetricNote(
        "share of the change from frame 0 that motion does not explain: below 0.6 objects move as wholes,"
        " near 1 they fade or dissolve in place",
        "lower",
        "dissolution",
        ratio=False,
    ),
    "loop_seam": MetricNote(
        "jump from the last frame back to the first, relative to an ordinary step (1 = seamless)",
        "lower",
        "loop seam",
        ratio=False,
    ),
    "psnr_first": MetricNote("fidelity of frame 0 to the input image", "higher", "frame-0 PSNR", ratio=False),
    "ssim_first": MetricNote(
        "structural similarity of frame 0 to the input image", "higher", "frame-0 SSIM", ratio=False
    ),
    "psnr_mean": MetricNote(
        "fidelity of all frames to the input image (falls as the video moves)",
        "higher",
        "mean PSNR",
        ratio=False,
    ),
    "ssim_mean": MetricNote(
        "structural similarity of all frames to the input image (falls as the video moves)",
        "higher",
        "mean SSIM",
        ratio=False,
    ),
}
SUMMARY_METRICS = ("motion_score", "warp_error", "dissolution", "psnr_first", "ssim_first")
FLAT_SHARE = 0.02  # a change under 2 % of the values' size reads as "stays flat"
SHORT_UNITS = ("dB", "px/frame")  # units a summary repeats; the others are read from the table
RATIO_FROM = 1.5  # from a factor of 1.5 a change reads as "rises 3.2x" rather than a difference

MODEL_CAVEATS: dict[str, str] = {
    "demo": "demo is svdlab's small demo model (2.7M parameters), trained on synthetic videos of moving "
    "sprites: these videos show the study in that small world, not what SVD does with photographs; run "
    "the spec with --model svd-xt for the real study.",
    "tiny-random": "tiny-random has random weights: its videos are noise, and the numbers test the "
    "plumbing only.",
}


def direction(metric: str) -> str:
    """'higher is better', 'lower is better', or what a metric without a better direction measures."""
    note = METRIC_NOTES.get(metric)
    if note is None:
        return ""
    return f"{note.better} is better" if note.better else "neither is better"


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def change_phrase(metric: str, start: float, end: float, unit: str) -> str:
    """How a metric moved from `start` to `end`, e.g. 'motion rises 17x (0.08 -> 1.4 px/frame)'."""
    note = METRIC_NOTES.get(metric, MetricNote("", None, metric, ratio=False))
    unit = unit if unit in SHORT_UNITS else ""
    span = f"({_fmt(start)} → {_fmt(end)} {unit})".replace(" )", ")")
    if abs(end - start) <= FLAT_SHARE * max(abs(start), abs(end)):
        return f"{note.phrase} stays flat {span}"
    verb = "rises" if end > start else "falls"
    if note.ratio and start > 0 and end > 0 and max(end / start, start / end) >= RATIO_FROM:
        return f"{note.phrase} {verb} {_fmt(max(end / start, start / end))}x {span}"
    difference = f"{_fmt(abs(end - start))} {unit}".rstrip()
    return f"{note.phrase} {verb} by {difference} {span}"


def _mean(values: list) -> float | None:
    finite = [value for value in values if isinstance(value, (int, float)) and math.isfinite(value)]
    return sum(finite) / len(finite) if finite else None


def summary(rows: list[dict], swept: list[str], units: dict[str, str]) -> list[str]:
    """One sentence per numeric swept parameter: how the main metrics' means (over images and the other
    parameters) change from its lowest to its highest value."""
    sentences = []
    for param in swept:
        values = sorted({row[param] for row in rows if isinstance(row.get(param), (int, float))})
        if len(values) < 2:
            continue
        low, high = values[0], values[-1]
        changes = []
        for metric in SUMMARY_METRICS:
            start = _mean([row.get(metric) for row in rows if row.get(param) == low])
            end = _mean([row.get(metric) for row in rows if row.get(param) == high])
            if start is not None and end is not None:
                changes.append(change_phrase(metric, start, end, units.get(metric, "")))
        if changes:
            sentences.append(f"From {param} {low:g} to {high:g}: {'; '.join(changes)}.")
    return sentences
