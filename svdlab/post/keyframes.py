"""Videos held at both ends: a given last frame (keyframe inbetweening) or the first image again (a
seamless loop, generated rather than played back and forth).

A context model takes both ends as context frames. A one-frame SVD cannot see a last frame, so it is
sampled by time-reversal fusion (Feng et al., ECCV 2024): at every step the model denoises the latents
conditioned on the first frame and, with the frames reversed, conditioned on the last frame, and the two
denoised samples are blended frame by frame, the first frame's weight falling linearly from 1 to 0
(`engine.sampler.sample_fused`; without the paper's extra re-noising rounds). ViBiDSampler (denoise
forward, re-noise, denoise backward, once per step) was tried first, at the same cost of two UNet
evaluations per step: on the demo model its last, backward half decides every frame, and frame 0 drifted
from the first image (15.7 dB against 23.4 for plain image-to-video on held-out scenes, with the frames
nearer the last keyframe at the start); fusion holds both ends (24.8 and 24.3 dB) and runs from one to
the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import PIL.Image

from svdlab.errors import InvalidParameterError
from svdlab.media import describe_source, fit_image, load_image, source_stem
from svdlab.media.fit import warn_if_cropped_hard
from svdlab.media.manifest import image_info

TIME_REVERSAL_FUSION = "time-reversal fusion"
CONTEXT_FRAMES = "context frames"


@dataclass
class LastFrame:
    """The fitted image a video ends on, the name suffix of its outputs and its manifest description."""

    image: PIL.Image.Image
    frames: int
    suffix: str
    info: dict

    def context(self, first: PIL.Image.Image) -> dict[int, PIL.Image.Image]:
        """The given frames of a video that starts on `first`."""
        return {0: first, self.frames - 1: self.image}


def keyframe_method(model) -> str:
    """How `model` holds a video's last frame: as a context frame, or by time-reversal fusion."""
    return CONTEXT_FRAMES if model.preset.context else TIME_REVERSAL_FUSION


def keyframes_entry(model, params, last: LastFrame | None = None) -> dict:
    """The manifest's `keyframes` entry for a video that loops or ends on `last` ({} for neither)."""
    if params.loop:
        return {"keyframes": {"mode": "loop", "method": keyframe_method(model)}}
    if last is not None:
        return {
            "keyframes": {"mode": "last_frame", "method": keyframe_method(model), "last_frame": last.info}
        }
    return {}


def load_last_frame(params, source: str | Path | object, max_pixels: int | None) -> LastFrame:
    """The image a video is to end on, loaded and fitted like the first; refused with a loop, or without
    a frame between the two."""
    if params.loop:
        raise InvalidParameterError(
            "--loop ends each video on its own first image, --last-frame on another one: choose one"
        )
    if params.num_frames < 3:
        raise InvalidParameterError(
            f"num_frames={params.num_frames} leaves no frame between the first and the last; use 3 or more"
        )
    name = describe_source(source)
    image = load_image(source, max_pixels=max_pixels)
    warn_if_cropped_hard(name, image.size, params.width, params.height, params.fit)
    fitted = fit_image(image, params.width, params.height, params.fit)
    return LastFrame(
        fitted, params.num_frames, f"_to-{source_stem(source)}", image_info(name, image, params.fit)
    )
