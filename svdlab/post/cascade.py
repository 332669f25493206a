"""The cascade after sampling, in the order of SVD's system: the generated keyframes, then interpolation,
then upscaling, each stage as a job's parameters say; every stage's frames, size, rate and time go into
the manifest's `cascade` entry, its metrics too for the stages before the last."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from svdlab.errors import InvalidParameterError
from svdlab.metrics.video import measure_video
from svdlab.post.interpolate import interpolated, interpolation_entry
from svdlab.post.upscale import Upscaler, check_upscalable, make_upscaler


class Upscalers:
    """The upscalers a run needs, each loaded once, by the settings that pick one."""

    def __init__(self, device: str | None = None):
        self.device = device
        self.loaded: dict[tuple, Upscaler] = {}

    def for_params(self, params, model) -> Upscaler | None:
        """The upscaler of a job's parameters on `model` (None without upscaling); checked and loaded once."""
        if params.upscale == 1:
            return None
        learned = params.upscale_model or model.preset.upscaler
        if params.upscale_method == "model" and learned is None:
            raise InvalidParameterError(
                f"{model.name} names no learned upscaler: pass --upscale-model FOLDER, or --upscale-method "
                "lanczos, bicubic or sr with --sr-model FILE"
            )
        method = params.upscale_method
        key = (method, params.upscale, learned if method == "model" else None, params.sr_model)
        if key not in self.loaded:
            self.loaded[key] = make_upscaler(
                method,
                params.upscale,
                model=key[2],
                sr_model=params.sr_model,
                device=self.device,
            )
        upscaler = replace(self.loaded[key], seed=params.seed)
        check_upscalable(upscaler, params.height, params.width, f"a {model.name} video")
        return upscaler


def cascade(
    frames: np.ndarray, params, model, upscaler: Upscaler | None, sampled_s: float | None = None
) -> tuple[np.ndarray, dict]:
    """A generated video's uint8 frames (F, H, W, 3) after interpolation and upscaling as `params` say, and
    the manifest entries that say what ran (`interpolation`, `upscale`, `cascade`)."""
    entries = interpolation_entry(model, params)
    if not entries and upscaler is None:
        return frames, {}
    stages = [_stage("keyframes", frames, params.fps, sampled_s)]
    fps = params.fps
    if entries:
        started = time.perf_counter()
        frames = interpolated(frames, params, model)
        fps *= params.interpolate_factor
        stages.append(_stage("interpolate", frames, fps, time.perf_counter() - started))
    if upscaler is not None:
        entries["upscale"] = upscaler.describe(*frames.shape[1:3])
        started = time.perf_counter()
        frames = upscaler(frames)
        stages.append(_stage("upscale", frames, fps, time.perf_counter() - started))
    for stage in stages[:-1]:
        stage["metrics"] = measure_video(stage.pop("frames"))
    stages[-1].pop("frames")
    entries["cascade"] = stages
    return frames, entries


def stage_records(entries: dict) -> tuple[dict, dict]:
    """From a cascade's manifest entries: the timings of its post stages ("interpolate_s", "upscale_s") and
    the metrics of its earlier stages' frames ("keyframes.motion_score", ...), for the store."""
    timings, metrics = {}, {}
    for stage in entries.get("cascade", []):
        if stage["stage"] != "keyframes" and "seconds" in stage:
            timings[f"{stage['stage']}_s"] = stage["seconds"]
        for name, value in stage.get("metrics", {}).items():
            metrics[f"{stage['stage']}.{name}"] = value
    return timings, metrics


def _stage(name: str, frames: np.ndarray, fps: float, seconds: float | None) -> dict:
    """One stage's record (its frames kept until the next stage measures them)."""
    record = {"stage": name, "frames": frames, "count": len(frames), "fps": fps}
    record.update(width=frames.shape[2], height=frames.shape[1])
    if seconds is not None:
        record["seconds"] = round(seconds, 3)
    return record
