"""A temporal-consistency term for training on clips with known motion: how much a prediction's error
changes along the true motion from each frame to the next.

The motion is the forward optical flow f of the true clip (t -> t + 1; the metrics' Farneback flow), kept
at reliable pixels only, exactly as `warp_error` keeps them (x + f(x) inside the frame, the backward flow
undoing f). With e the prediction's error (prediction - truth), the term is, per clip,

    mean over pairs t and reliable pixels x of  mean over channels of (e(t + 1, x + f(x)) - e(t, x))^2,

e(t + 1) read bilinearly. A prediction whose error moves with the content, as a frame's own detail does,
scores 0 however large its error; one whose error shimmers or crawls against the motion scores high. This
is what `warp_error` sees of an upscaler's output beyond the truth's own warp error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from svdlab.media import frames_to_uint8
from svdlab.metrics.flow import both_flows, pixel_grid, reliable_targets


@dataclass
class TrueMotion:
    """Where each pixel of frames 0..T-2 goes in the next frame, as grid_sample grids (B, T - 1, H, W, 2)
    (-1 and 1 the outermost pixels' centres), and where that is known (B, T - 1, H, W) bool."""

    grids: torch.Tensor
    reliable: torch.Tensor


def true_motion(clips: torch.Tensor) -> TrueMotion:
    """The motion of clips (B, T, 3, H, W) in [-1, 1], from their optical flow."""
    height, width = clips.shape[-2:]
    grid = pixel_grid(height, width)
    grids, reliable = [], []
    for clip in clips:
        frames = frames_to_uint8(clip.float() / 2 + 0.5)
        for forward, backward in zip(*both_flows(frames)):
            target, known = reliable_targets(forward, backward, grid)
            grids.append(target)
            reliable.append(known)
    points = torch.from_numpy(np.stack(grids)).view(len(clips), -1, height, width, 2)
    scale = torch.tensor([2 / max(width - 1, 1), 2 / max(height - 1, 1)])
    masks = torch.from_numpy(np.stack(reliable)).view(len(clips), -1, height, width)
    return TrueMotion(points * scale - 1, masks)


def error_change_along_motion(errors: torch.Tensor, motion: TrueMotion) -> torch.Tensor:
    """The module's term for errors (B, T, C, H, W): one value per clip, 0 where no pixel is reliable."""
    batch, frames = errors.shape[:2]
    following = F.grid_sample(
        errors[:, 1:].flatten(0, 1),
        motion.grids.to(errors.device, errors.dtype).flatten(0, 1),
        mode="bilinear",
        padding_mode="border",
        align_corners=True,
    ).view(batch, frames - 1, *errors.shape[2:])
    change = (following - errors[:, :-1]).pow(2).mean(dim=2)
    mask = motion.reliable.to(errors.device, errors.dtype)
    return (change * mask).sum(dim=(1, 2, 3)) / mask.sum(dim=(1, 2, 3)).clamp(min=1)
