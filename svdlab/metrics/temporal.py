"""Temporal consistency: brightness flicker, flow-compensated warp error and the loop seam.

- flicker = mean over t of |Y(t + 1) - Y(t)|, Y a frame's mean BT.601 luma. Unit: luma levels (0..255)
  per frame. Motion that keeps the frame's average brightness scores about 0; brightness jitter adds to it.
- warp_error: frame t + 1 is warped back onto frame t along the forward flow f (t -> t + 1), and the
  absolute RGB error is averaged over all reliable pixels of all pairs, divided by 255 (unit 0..1). A
  pixel is reliable when x + f(x) lies inside the frame and the backward flow b (t + 1 -> t) undoes the
  forward flow, as in Ruder et al. (2016): |f + b'|^2 <= 0.01 (|f|^2 + |b'|^2) + 0.5 px^2 with
  b' = b(x + f(x)). Flows and warps run at frames shrunk to `max_side`. If no pixel is reliable the error
  is averaged over all pixels instead. Motion the flow explains scores about 0; new content, noise and
  flicker score higher.
- loop_seam = mean |last frame - first frame| / mean over t of mean |frame t + 1 - frame t| (RGB, all
  pixels). Unit: ratio; about 1 means the jump back to the start looks like any other step, much more
  than 1 a visible seam. A video whose consecutive frames are all identical scores 1.0 (its last frame is
  then its first too), as does a single frame.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from svdlab.media import frames_to_uint8
from svdlab.metrics.flow import (
    FLOW_SIDE,
    both_flows,
    downscale,
    pixel_grid,
    reliable_targets,
    sample,
    to_gray,
)

if TYPE_CHECKING:
    import torch


def flicker(frames: np.ndarray | torch.Tensor) -> float:
    """Mean change of the frame-average luma between consecutive frames, in levels of 0..255."""
    luma = to_gray(frames_to_uint8(frames)).mean(axis=(1, 2))
    return float(np.abs(np.diff(luma)).mean()) if len(luma) > 1 else 0.0


def compensated_error(frames: np.ndarray, forward: list[np.ndarray], backward: list[np.ndarray]) -> float:
    """Mean absolute colour error (0..1) of each frame warped back onto the one before, at reliable pixels."""
    if not forward:
        return 0.0
    height, width = frames.shape[1:3]
    grid = pixel_grid(height, width)
    reliable_sum = reliable_count = every_sum = 0.0
    for previous, following, ahead, back in zip(frames[:-1], frames[1:], forward, backward):
        target, reliable = reliable_targets(ahead, back, grid)
        error = np.abs(sample(following, target).astype(np.float32) - previous).mean(axis=2)
        reliable_sum += float(error[reliable].sum())
        reliable_count += float(reliable.sum())
        every_sum += float(error.sum())
    if reliable_count == 0:
        return every_sum / (len(forward) * height * width * 255)
    return reliable_sum / (reliable_count * 255)


def warp_error(frames: np.ndarray | torch.Tensor, max_side: int | None = FLOW_SIDE) -> float:
    """Flow-compensated colour error of consecutive frames at reliable pixels, 0..1; 0.0 for one frame."""
    small = downscale(frames_to_uint8(frames), max_side)
    return compensated_error(small, *both_flows(small))


def loop_seam(frames: np.ndarray | torch.Tensor) -> float:
    """Mean last-to-first frame difference over the mean consecutive-frame difference; 1 = seamless loop."""
    pixels = frames_to_uint8(frames)
    if len(pixels) < 2:
        return 1.0
    steps = float(np.mean([cv2.absdiff(a, b).mean() for a, b in zip(pixels[:-1], pixels[1:])]))
    return float(cv2.absdiff(pixels[-1], pixels[0]).mean()) / steps if steps else 1.0


def keyframe_progress(frames: np.ndarray, first: np.ndarray, last: np.ndarray) -> float:
    """Rank correlation of frame number with each frame's share of the way from `first` to `last` (by
    squared error, uint8 frames): 1 = every frame nearer the last keyframe than the one before."""
    to_first = np.array([np.mean((frame.astype(float) - first) ** 2) for frame in frames])
    to_last = np.array([np.mean((frame.astype(float) - last) ** 2) for frame in frames])
    share = to_first / np.maximum(to_first + to_last, 1e-9)
    return float(np.corrcoef(np.arange(len(share)), np.argsort(np.argsort(share)))[0, 1])
