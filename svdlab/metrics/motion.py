"""Motion score: how much a video moves, the kind of score the SVD paper used to label its training clips.

motion_score = mean over frame pairs (t, t + stride) and over all pixels of |flow| / stride, where flow is
OpenCV Farneback optical flow on grayscale. Unit: pixels per frame at the frames' own resolution (flow
computed on downscaled frames is scaled back per axis). A still video scores 0; a scene panning k px per
frame scores about k; an object moving k px per frame over a still background scores about k times the
share of the frame it covers (a little more: Farneback spreads motion a few pixels past object edges).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from svdlab.media import frames_to_uint8
from svdlab.metrics.flow import FLOW_SIDE, downscale, pair_flows, to_gray

if TYPE_CHECKING:
    import torch


def mean_magnitude(flows: list[np.ndarray], size: tuple[int, int]) -> float:
    """Mean flow magnitude over all pixels and flows, in pixels of a frame of `size` (H, W); 0 for none."""
    if not flows:
        return 0.0
    height, width = flows[0].shape[:2]
    scale = np.array([size[1] / width, size[0] / height], dtype=np.float32)
    return float(np.mean([np.linalg.norm(flow * scale, axis=2).mean() for flow in flows]))


def motion_score(
    frames: np.ndarray | torch.Tensor, stride: int = 1, max_side: int | None = FLOW_SIDE
) -> float:
    """Mean optical-flow magnitude in px/frame over pairs `stride` frames apart; 0.0 for too few frames."""
    if stride < 1:
        raise ValueError(f"stride={stride} is not allowed: use 1 or more frames")
    pixels = frames_to_uint8(frames)
    flows = pair_flows(to_gray(downscale(pixels, max_side)), stride)
    return mean_magnitude(flows, pixels.shape[1:3]) / stride


def flow_cosine(
    made: np.ndarray | torch.Tensor, truth: np.ndarray | torch.Tensor, moving: float = 0.5
) -> float:
    """Mean cosine between the optical flows of consecutive frames of two videos of the same shape, at the
    pixels where the truth moves at least `moving` px per frame: 1 = same direction, 0 = unrelated; NaN
    where the truth never moves that much."""
    made_gray, true_gray = to_gray(frames_to_uint8(made)), to_gray(frames_to_uint8(truth))
    cosines = []
    for a, b in zip(pair_flows(made_gray), pair_flows(true_gray)):
        speed = np.linalg.norm(b, axis=2)
        mask = speed >= moving
        dot = (a * b).sum(axis=2)[mask]
        cosines.append(dot / np.maximum(np.linalg.norm(a, axis=2)[mask] * speed[mask], 1e-6))
    values = np.concatenate(cosines) if cosines else np.array([])
    return float(values.mean()) if values.size else float("nan")
