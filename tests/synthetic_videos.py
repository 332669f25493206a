"""Small synthetic RGB clips (F, H, W, 3) uint8 whose motion, flicker and seams are known exactly."""

from __future__ import annotations

import cv2
import numpy as np

FRAMES, HEIGHT, WIDTH = 10, 96, 128


def texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A random colour texture, smoothed so optical flow is well defined (mean 128, contrast about 50)."""
    noise = np.random.default_rng(seed).random((height, width, 3)).astype(np.float32) * 255
    smooth = cv2.GaussianBlur(noise, (0, 0), 1.5)
    return np.clip((smooth - smooth.mean()) / smooth.std() * 50 + 128, 0, 255).astype(np.uint8)


def pan(dx: int, dy: int = 0, frames: int = FRAMES, seed: int = 0) -> np.ndarray:
    """A textured scene moving (dx, dy) px per frame across the whole view."""
    scene = texture(HEIGHT + abs(dy) * frames, WIDTH + abs(dx) * frames, seed)
    x0, y0 = (abs(dx) * frames if dx < 0 else 0), (abs(dy) * frames if dy < 0 else 0)
    return np.stack(
        [scene[y0 + t * dy : y0 + t * dy + HEIGHT, x0 + t * dx : x0 + t * dx + WIDTH] for t in range(frames)]
    )


def moving_square(dx: int, dy: int = 0, side: int = 40, frames: int = FRAMES) -> np.ndarray:
    """A textured square moving (dx, dy) px per frame over a still textured background."""
    background, patch = texture(HEIGHT, WIDTH, seed=1), texture(side, side, seed=2)
    clip = np.repeat(background[None], frames, axis=0)
    for t, frame in enumerate(clip):
        frame[4 + t * dy : 4 + t * dy + side, 4 + t * dx : 4 + t * dx + side] = patch
    return clip


def looping_pan(dx: int, frames: int = FRAMES) -> np.ndarray:
    """A pan over a texture that repeats every `frames` steps, so the last frame steps back to the first."""
    scene = texture(HEIGHT, dx * frames, seed=3)
    tiled = np.concatenate([scene] * (WIDTH // (dx * frames) + 2), axis=1)
    return np.stack([tiled[:, t * dx : t * dx + WIDTH] for t in range(frames)])


def still(frames: int = FRAMES) -> np.ndarray:
    """The same textured frame repeated."""
    return np.repeat(texture(HEIGHT, WIDTH, seed=4)[None], frames, axis=0)


def noise(frames: int = FRAMES, seed: int = 5) -> np.ndarray:
    """Independent random textures, one per frame."""
    return np.stack([texture(HEIGHT, WIDTH, seed=seed + t) for t in range(frames)])


def with_brightness_jitter(clip: np.ndarray, levels: int = 10, seed: int = 6) -> np.ndarray:
    """The clip with every frame brightened or darkened by `levels`, the sign random per frame."""
    signs = np.random.default_rng(seed).choice([-1, 1], size=len(clip))
    return np.clip(clip.astype(np.int16) + (signs * levels)[:, None, None, None], 0, 255).astype(np.uint8)


def sliding_shape(speed: float, change: str = "none", frames: int = 8, size: int = 64) -> np.ndarray:
    """A textured 20 px square sliding `speed` px/frame to the right over a still textured background.

    `change` alters the square as it slides: "fade" blends it into the background and back
    (opacity |cos(pi t / (frames - 1))|), "noise" turns it step by step into fresh random noise.
    """
    side, rng = 20, np.random.default_rng(7)
    background = texture(size, size, seed=8).astype(np.float32)
    patch = texture(side, side, seed=9).astype(np.float32)
    clip = []
    for t in range(frames):
        frame, left = background.copy(), round(4 + speed * t)
        region = frame[22 : 22 + side, left : left + side]
        shown = patch[:, : region.shape[1]]
        if change == "noise":
            shown = shown + (rng.random(shown.shape) * 255 - shown) * t / (frames - 1)
        opacity = abs(np.cos(np.pi * t / (frames - 1))) if change == "fade" else 1.0
        region[:] = opacity * shown + (1 - opacity) * region
        clip.append(frame)
    return np.clip(np.round(np.stack(clip)), 0, 255).astype(np.uint8)
