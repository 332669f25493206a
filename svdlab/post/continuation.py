"""Long videos: a video continued segment by segment from its own last frames.

A context model sees the last two frames as context frames 0 and 1, which carry the motion's direction
and speed into the next segment (Video LDM's prediction model "encodes movement" with two). A one-frame
model can only be chained on the last frame as its input image: each segment starts afresh from it, so
the direction of motion is lost at every boundary (cascade.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.Image

from svdlab.engine import Job, VideoEngine
from svdlab.errors import InvalidParameterError, InvalidVideoError
from svdlab.media import fit_image
from svdlab.media.export import frames_to_uint8
from svdlab.media.videos import read_video
from svdlab.params import make_params
from svdlab.post.outputs import PostVideo, input_info, post_target, write_post_video
from svdlab.progress import generation_progress

TWO_FRAME = "2-frame continuation (context model)"
LAST_FRAME = "last-frame chaining (one-frame model)"


def continuation_method(model) -> str:
    """How `model` continues a video: from its last two frames, or chained on its last frame."""
    return TWO_FRAME if model.preset.context else LAST_FRAME


def fitted_frames(frames: np.ndarray, width: int, height: int, fit: str) -> np.ndarray:
    """uint8 frames (F, H, W, 3) fitted to width x height like any input image."""
    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack([np.asarray(fit_image(PIL.Image.fromarray(f), width, height, fit)) for f in frames])


def check_continuable(frames: np.ndarray, model, params) -> int:
    """How many of the last frames carry into each segment, once the video is known to have them."""
    given = 2 if model.preset.context else 1
    if len(frames) < given:
        raise InvalidVideoError(
            f"the video has {len(frames)} frame; continuing it with {model.name} needs {given}: "
            "pass a longer video"
        )
    if params.num_frames <= given:
        raise InvalidParameterError(
            f"num_frames={params.num_frames} adds no frame after {given} given; use more"
        )
    return given


def continue_frames(
    frames: np.ndarray, model, params, segments: int, engine: VideoEngine | None = None, on_step=None
) -> np.ndarray:
    """The frames (F, H, W, 3) uint8 at the model's size followed by `segments` generated segments, segment
    k drawn with seed params.seed + k; a context model continues from the last two frames (each segment
    adds num_frames - 2), a one-frame model from the last frame (num_frames - 1)."""
    given = check_continuable(frames, model, params)
    engine = engine or VideoEngine(model)
    video = list(fitted_frames(frames, params.width, params.height, params.fit))
    for segment in range(segments):
        seeded = params.model_copy(update={"seed": params.seed + segment})
        images = [PIL.Image.fromarray(frame) for frame in video[-given:]]
        job = Job(images[0], seeded, context=dict(enumerate(images)) if model.preset.context else None)
        (result,) = engine.run([job], on_step=on_step)
        video.extend(frames_to_uint8(result.frames)[given:])
    return np.stack(video)


def extend_video(
    source: str | Path,
    segments: int,
    model: str | object = "demo-context",
    out: str | Path = "outputs",
    format: str = "mp4",
    overwrite: bool = False,
    seed: int = 42,
    steps: int | None = None,
    progress: bool = False,
) -> PostVideo:
    """Continue a video file by `segments` generated segments (continue_frames, the model's defaults,
    `seed` and `steps`) into `out`, at the model's size and the video's frame rate, with a manifest naming
    the method, the model and the input."""
    from svdlab.post.learned import loaded_model

    if segments < 1:
        raise InvalidParameterError(f"--segments {segments} is not allowed: use 1 or more")
    source = Path(source)
    frames, fps = read_video(source)
    loaded = loaded_model(model)
    params = make_params(seed=seed, steps=steps).resolved(loaded)
    check_continuable(frames, loaded, params)
    made_from = input_info(source, frames, fps)
    target = post_target(source, f"extend{segments}", out, format, made_from, overwrite)
    with generation_progress(segments * params.steps, segments, progress) as bar:
        made = continue_frames(frames, loaded, params, segments, on_step=bar.step)
    made_by = {
        "operation": "extend",
        "method": continuation_method(loaded),
        "segments": segments,
        "model": loaded.describe(),
        "params": params.model_dump(),
    }
    return write_post_video(made, fps, format, target, made_by, made_from)
