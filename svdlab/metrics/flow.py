"""Dense optical flow shared by the metrics: OpenCV Farneback on 8-bit grayscale, one set of parameters.

Flow is in pixels of the frames it was computed on, (H, W, 2) float32 with x then y. The parameters
were chosen on synthetic clips: a textured scene moving 1 to 12 px per frame (sideways or diagonally) at
96x128 and 144x256 gets its true displacement back within 2 %. A pyramid scale of 0.7 reaches large
motions on small frames, since OpenCV stops adding levels once the shorter side would drop below 32 px.
"""

from __future__ import annotations

import cv2
import numpy as np

FARNEBACK = {
    "pyr_scale": 0.7,
    "levels": 10,
    "winsize": 15,
    "iterations": 3,
    "poly_n": 7,
    "poly_sigma": 1.5,
    "flags": 0,
}
FLOW_SIDE = 256
STRETCH_PERCENTILES = (1, 99)
CONSISTENCY_RELATIVE = 0.01
CONSISTENCY_PX2 = 0.5


def to_gray(frames_uint8: np.ndarray) -> np.ndarray:
    """(F, H, W) uint8 luma (BT.601 weights) of (F, H, W, 3) uint8 RGB frames."""
    return np.stack([cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames_uint8])


def stretch_contrast(gray: np.ndarray) -> np.ndarray:
    """(F, H, W) uint8 luma with the clip's STRETCH_PERCENTILES levels spread over 0..255 (one map for all
    frames, so brightness changes between frames are kept); a flat clip is returned unchanged."""
    low, high = np.percentile(gray, STRETCH_PERCENTILES)
    if high - low < 1:
        return gray
    spread = (gray.astype(np.float32) - low) * (255 / (high - low))
    return np.clip(np.round(spread), 0, 255).astype(np.uint8)


def downscale(frames: np.ndarray, max_side: int | None) -> np.ndarray:
    """Frames (F, H, W[, 3]) shrunk so their longer side is at most `max_side`; None or small frames pass."""
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side={max_side} is not allowed: use a positive side length or None")
    height, width = frames.shape[1:3]
    if max_side is None or max(height, width) <= max_side:
        return frames
    scale = max_side / max(height, width)
    size = (max(round(width * scale), 1), max(round(height * scale), 1))
    return np.stack([cv2.resize(frame, size, interpolation=cv2.INTER_AREA) for frame in frames])


def fit_side(frames: np.ndarray, side: int) -> np.ndarray:
    """Frames (F, H, W[, 3]) resized so their longer side is `side` (area shrink, bicubic enlarge)."""
    height, width = frames.shape[1:3]
    if max(height, width) == side:
        return frames
    scale = side / max(height, width)
    size = (max(round(width * scale), 1), max(round(height * scale), 1))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return np.stack([cv2.resize(frame, size, interpolation=interpolation) for frame in frames])


def farneback_flow(previous: np.ndarray, following: np.ndarray) -> np.ndarray:
    """Dense flow (H, W, 2) in pixels from `previous` to `following`, both (H, W) uint8 grayscale."""
    return cv2.calcOpticalFlowFarneback(previous, following, None, **FARNEBACK)


def pair_flows(gray: np.ndarray, stride: int = 1, backward: bool = False) -> list[np.ndarray]:
    """Flows from frame t to t + stride of (F, H, W) uint8 frames, or from t + stride to t if `backward`."""
    pairs = zip(gray[:-stride], gray[stride:])
    return [farneback_flow(b, a) if backward else farneback_flow(a, b) for a, b in pairs]


def both_flows(frames: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Forward (t -> t + 1) and backward (t + 1 -> t) flows of (F, H, W, 3) uint8 RGB frames."""
    gray = to_gray(frames)
    return pair_flows(gray), pair_flows(gray, backward=True)


def consistent(flow: np.ndarray, returned: np.ndarray) -> np.ndarray:
    """(H, W) bool: where `returned` (the opposite flow, sampled at x + flow) undoes `flow` (Ruder et al.)."""
    mismatch = np.square(flow + returned).sum(axis=2)
    bound = CONSISTENCY_RELATIVE * (np.square(flow).sum(axis=2) + np.square(returned).sum(axis=2))
    return mismatch <= bound + CONSISTENCY_PX2


def reliable_targets(
    flow: np.ndarray, opposite: np.ndarray, grid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Where each pixel of `grid` (pixel_grid) lands along `flow` (H, W, 2), and (H, W) bool where that is
    reliable: inside the frame and undone by the `opposite` flow there (Ruder et al.)."""
    targets = grid + flow
    height, width = flow.shape[:2]
    return targets, inside(targets, height, width) & consistent(flow, sample(opposite, targets))


def pixel_grid(height: int, width: int) -> np.ndarray:
    """(H, W, 2) float32 pixel coordinates, x then y."""
    return np.stack(np.meshgrid(np.arange(width), np.arange(height)), axis=-1).astype(np.float32)


def inside(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W) bool: whether each (x, y) point lies within a frame of `height` x `width` pixels."""
    x, y = points[..., 0], points[..., 1]
    return (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)


def sample(image: np.ndarray, points: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """`image` read at the (H, W, 2) float32 `points` (x, y), edges repeated."""
    return cv2.remap(image, points[..., 0], points[..., 1], interpolation, borderMode=cv2.BORDER_REPLICATE)
