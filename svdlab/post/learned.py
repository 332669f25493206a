"""Frame interpolation by a context model: the known frames are context frames every `factor` frames
of a window, and the model generates the frames between them (SVD's interpolation model, Video LDM's
masking scheme)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.Image

from svdlab.engine import Job, VideoEngine
from svdlab.errors import InvalidParameterError, InvalidVideoError
from svdlab.media.export import frames_to_uint8
from svdlab.post.continuation import fitted_frames
from svdlab.progress import generation_progress


def loaded_model(model):
    """The model to run: an SVDModel as given, or loaded by name on the best device."""
    from svdlab.models import load_model

    return load_model(model) if isinstance(model, (str, Path)) else model


def interpolation_jobs(frames: np.ndarray, factor: int, model, params) -> list[Job]:
    """One job per window of the video: params.num_frames frames (fewer for a short video) holding every
    `factor`-th frame as context, fitted to the model's size; window k is drawn with seed params.seed + k
    and tagged with its first input frame. The last window is moved back to end on the last frame."""
    if not model.preset.context:
        raise InvalidParameterError(
            f"{model.name} is a one-frame model and cannot interpolate; use a context model such as "
            "demo-context, or --method flow"
        )
    if len(frames) < 2:
        raise InvalidVideoError(f"the video has {len(frames)} frame; interpolation needs at least 2")
    span = min((params.num_frames - 1) // factor, len(frames) - 1)
    if span < 1:
        raise InvalidParameterError(
            f"num_frames={params.num_frames} is too few for {factor}x interpolation; use {factor + 1} or more"
        )
    window = params.model_copy(update={"num_frames": span * factor + 1})
    fitted = fitted_frames(frames, window.width, window.height, window.fit)
    images = [PIL.Image.fromarray(frame) for frame in fitted]
    starts = sorted({min(start, len(images) - 1 - span) for start in range(0, len(images) - 1, span)})
    return [
        Job(
            images[start],
            window.model_copy(update={"seed": window.seed + number}),
            tag=start,
            context={k * factor: images[start + k] for k in range(span + 1)},
        )
        for number, start in enumerate(starts)
    ]


def model_interpolate(
    frames: np.ndarray,
    factor: int,
    model,
    params,
    engine: VideoEngine | None = None,
    progress: bool = False,
) -> np.ndarray:
    """(N, H, W, 3) uint8 frames with `factor - 1` generated frames between each pair, at the model's size
    ((N - 1) * factor + 1 frames); the known frames are kept as they were. `progress` shows a bar."""
    jobs = interpolation_jobs(frames, factor, model, params)
    width, height = jobs[0].params.width, jobs[0].params.height
    made = np.zeros(((len(frames) - 1) * factor + 1, height, width, 3), np.uint8)
    filled = np.zeros(len(made), bool)
    made[::factor], filled[::factor] = fitted_frames(frames, width, height, params.fit), True
    with generation_progress(len(jobs) * params.steps, len(jobs), progress) as bar:
        for result in (engine or VideoEngine(model)).run(jobs, on_step=bar.step):
            for offset, frame in enumerate(frames_to_uint8(result.frames)):
                position = result.job.tag * factor + offset
                if not filled[position]:
                    made[position], filled[position] = frame, True
    return made
