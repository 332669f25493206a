"""Dissolution: how much of a video's change from its first frame is not explained by motion.

Frame 0 is carried along the accumulated optical flow to every later frame t and compared with frame t.
Each pixel x of frame t is traced back link by link: y = x + b(x), b the backward flow t -> t - 1, until
it lands on frame 0 at p_t(x); frame 0 sampled at p_t gives frame 0 moved to time t. A pixel is reliable
when every link passes the forward-backward check of Ruder et al. (2016) (the forward flow at y undoes b:
|b + f(y)|^2 <= 0.01 (|b|^2 + |f(y)|^2) + 0.5 px^2) and stays inside the frame, so regions that were
occluded or revealed on the way drop out. Over the reliable pixels R_t of all frames t >= 1:

    dissolution = sum_t sum_{x in R_t} |F_t(x) - F_0(p_t(x))|  /  max(sum_t sum_{x in R_t} |F_t(x) - F_0(x)|,
                                                                       CHANGE_FLOOR * sum_t |R_t|)

with |.| the mean absolute RGB difference in levels (0..255). The denominator is the change from frame 0
that did happen at those pixels (not less than CHANGE_FLOOR levels per pixel, so a nearly still video,
whose small changes are all noise, scores near 0). Unit: ratio. About 0 means everything that changed did
so by moving (an object that slides, a camera pan, at any speed); about 1 or more means the content was
replaced where it stood (fading, dissolving into noise, smearing and re-forming). Videos scoring below
INTACT_BELOW (0.6) are called intact: on 64 px synthetic clips a textured shape sliding 0.5 to 5 px/frame
over a textured background scores 0.29 to 0.38 (flow is smoothed over its edges), the same shape fading
out and back in, or dissolving into noise, while it slides 0.73 to 0.88; a 128 px textured pan scores 0.01,
a still clip 0.02.

Flows are computed on frames resized so that their longer side is FLOW_SIDE (256) px, enlarged bicubically
if smaller: Farneback's 15 px window then stays small against the objects of a 64 px video. Their luma is
contrast-stretched first (flow.stretch_contrast: the clip's 1st..99th percentile levels spread over 0..255,
one map for all frames): Farneback's estimate shrinks with contrast, and on a clip whose luma spans 95..148
it reads a 0.66 px/frame pan as still, which would score the pan as dissolving.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from svdlab.media import frames_to_uint8
from svdlab.metrics.flow import (
    FLOW_SIDE,
    fit_side,
    pair_flows,
    pixel_grid,
    reliable_targets,
    sample,
    stretch_contrast,
    to_gray,
)

if TYPE_CHECKING:
    import torch

CHANGE_FLOOR = 2.0
INTACT_BELOW = 0.6


def dissolution_from_flows(
    frames: np.ndarray, forward: list[np.ndarray], backward: list[np.ndarray]
) -> float:
    """Dissolution of (F, H, W, 3) uint8 frames given flows t -> t + 1 and t + 1 -> t; 0.0 for one frame."""
    if not forward:
        return 0.0
    height, width = frames.shape[1:3]
    grid = pixel_grid(height, width)
    first = frames[0].astype(np.float32)
    source, reliable = grid, np.ones((height, width), bool)
    unexplained = changed = count = 0.0
    for frame, ahead, back in zip(frames[1:], forward, backward):
        previous, link = reliable_targets(back, ahead, grid)
        source = sample(source, previous)
        reliable = link & (sample(reliable.astype(np.uint8), previous, cv2.INTER_NEAREST) > 0)
        current = frame.astype(np.float32)
        moved = np.abs(current - sample(first, source)).mean(axis=2)
        unexplained += float(moved[reliable].sum())
        changed += float(np.abs(current - first).mean(axis=2)[reliable].sum())
        count += float(reliable.sum())
    if count == 0:
        return 1.0
    return unexplained / max(changed, CHANGE_FLOOR * count)


def persistence_flows(frames: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Forward and backward flows of (F, H, W, 3) uint8 frames, computed on their contrast-stretched luma."""
    gray = stretch_contrast(to_gray(frames))
    return pair_flows(gray), pair_flows(gray, backward=True)


def dissolution(frames: np.ndarray | torch.Tensor, side: int = FLOW_SIDE) -> float:
    """Share of the change from frame 0 that motion along the flow does not explain; 0 = moves as wholes."""
    sized = fit_side(frames_to_uint8(frames), side)
    return dissolution_from_flows(sized, *persistence_flows(sized))
