"""The upscale task's temporal-consistency term: an error that moves with the content costs nothing, one
that stays in place or changes every frame costs about its size."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from svdlab.training.motion import error_change_along_motion, true_motion

SIDE, FRAMES, SPEED = 64, 5, 2


def smooth_noise(seed: int, channels: int, side: int) -> np.ndarray:
    """(side, side, channels) float32 noise blurred to features of a few pixels, about unit std."""
    noise = np.random.default_rng(seed).standard_normal((side, side, channels)).astype(np.float32)
    blurred = cv2.GaussianBlur(noise, (0, 0), 2.0).reshape(side, side, channels)
    return blurred / blurred.std()


def sliding(image: np.ndarray, per_frame: int) -> torch.Tensor:
    """(1, FRAMES, C, SIDE, SIDE): a window of `image` that moves `per_frame` px right each frame."""
    frames = [image[:SIDE, SIDE - t * per_frame : 2 * SIDE - t * per_frame] for t in range(FRAMES)]
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)[None]


@pytest.fixture(scope="module")
def motion():
    """The true motion of a texture sliding SPEED px right per frame."""
    texture = smooth_noise(0, 3, 2 * SIDE)
    clip = sliding((texture / 4).clip(-1, 1), SPEED)
    return true_motion(clip)


def test_the_motion_is_the_slide_and_known_where_content_stays_in_the_frame(motion):
    assert motion.grids.shape == (1, FRAMES - 1, SIDE, SIDE, 2)
    pixels = (motion.grids + 1) / 2 * (SIDE - 1)
    grid_x = torch.arange(SIDE).float().view(1, 1, 1, SIDE)
    shift = (pixels[..., 0] - grid_x)[motion.reliable]
    assert abs(float(shift.median()) - SPEED) < 0.1
    assert 0.7 < float(motion.reliable.float().mean()) < 0.98  # the column that leaves the frame is not


def test_errors_that_move_with_the_content_cost_far_less_than_errors_that_do_not(motion):
    error = smooth_noise(1, 3, 2 * SIDE)
    moving = error_change_along_motion(sliding(error, SPEED), motion)
    still = error_change_along_motion(sliding(error, 0), motion)
    fresh = torch.stack(
        [torch.from_numpy(smooth_noise(10 + t, 3, SIDE)).permute(2, 0, 1) for t in range(FRAMES)]
    )[None]
    changing = error_change_along_motion(fresh, motion)
    assert moving.shape == (1,)
    assert float(moving) < 0.05 * float(still) and float(still) > 0.2
    assert float(changing) == pytest.approx(2.0, rel=0.25)  # two independent unit-variance errors
    assert float(error_change_along_motion(sliding(error, SPEED) * 0, motion)) == 0.0
