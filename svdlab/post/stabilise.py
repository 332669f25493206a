"""Temporal stabilisation of a video upscaled frame by frame, whose fine detail flickers between frames.

Each output frame t > 0 is the input frame t blended with the previous output frame, warped to frame t
along the optical flow from frame t back to frame t - 1 (computed on the input frames, OpenCV Farneback
as in the metrics): out(t) = (1 - strength) in(t) + strength warp(out(t - 1)). The blend applies only
where the flow is reliable, that is where the warp's source lies inside the frame and the forward flow
(t - 1 -> t) undoes the backward one; elsewhere (occlusions, new content, cuts) frame t is kept. Since
out(t - 1) is itself blended, this is an exponential average along the motion.
"""

from __future__ import annotations

import numpy as np
import torch

from svdlab.errors import InvalidParameterError
from svdlab.media import frames_to_uint8
from svdlab.metrics.flow import farneback_flow, pixel_grid, reliable_targets, sample, to_gray


def stabilise(frames: torch.Tensor, strength: float = 0.5) -> torch.Tensor:
    """(T, 3, H, W) frames in [0, 1] with each frame blended with the one before along the motion."""
    if not 0 <= strength < 1:
        raise InvalidParameterError(f"strength={strength} is not allowed: use a value from 0 up to below 1")
    if strength == 0 or len(frames) < 2:
        return frames
    gray = to_gray(frames_to_uint8(frames))
    pixels = np.ascontiguousarray(frames.detach().cpu().float().permute(0, 2, 3, 1).numpy())
    height, width = gray.shape[1:]
    grid = pixel_grid(height, width)
    out = [pixels[0]]
    for t in range(1, len(pixels)):
        back = farneback_flow(gray[t], gray[t - 1])
        source, reliable = reliable_targets(back, farneback_flow(gray[t - 1], gray[t]), grid)
        weight = np.where(reliable, np.float32(strength), np.float32(0))[..., None]
        out.append(pixels[t] + weight * (sample(out[-1], source) - pixels[t]))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(frames.device, frames.dtype)
