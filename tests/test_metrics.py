"""svdlab.metrics on synthetic clips whose motion, flicker, seams and fidelity are known."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from svdlab.metrics import (
    INTACT_BELOW,
    METRIC_UNITS,
    dissolution,
    farneback_flow,
    fidelity,
    flicker,
    loop_seam,
    measure_video,
    motion_score,
    psnr,
    ssim,
    to_gray,
    warp_error,
)
from svdlab.metrics.flow import stretch_contrast
from tests.synthetic_videos import (
    HEIGHT,
    WIDTH,
    looping_pan,
    moving_square,
    noise,
    pan,
    sliding_shape,
    still,
    texture,
    with_brightness_jitter,
)

SPEEDS = (1, 2, 4, 8)
# the first-generation demo (5e7f0dd) at bucket 240 on held-out scene 90000, its 8 frames side by side
OLD_DEMO_VIDEO = Path(__file__).parent / "data" / "old-demo-bucket-240.png"
VIDEO_KEYS = {"motion_score", "flicker", "warp_error", "dissolution", "loop_seam"}
FIDELITY_KEYS = {"psnr_first", "ssim_first", "psnr_mean", "ssim_mean"}


def noisy(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """The image with Gaussian noise of `sigma` levels added."""
    noise_values = np.random.default_rng(seed).normal(0, sigma, image.shape)
    return np.clip(np.round(image + noise_values), 0, 255).astype(np.uint8)


def test_farneback_flow_finds_a_known_shift():
    gray = to_gray(pan(3, -2, frames=2))
    assert gray.shape == (2, HEIGHT, WIDTH) and gray.dtype == np.uint8
    flow = farneback_flow(gray[0], gray[1])
    assert flow.shape == (HEIGHT, WIDTH, 2)
    assert np.median(flow[..., 0]) == pytest.approx(-3, abs=0.1)
    assert np.median(flow[..., 1]) == pytest.approx(2, abs=0.1)


@pytest.mark.parametrize("speed", SPEEDS)
def test_panning_scene_scores_its_speed(speed):
    assert motion_score(pan(speed)) == pytest.approx(speed, rel=0.2)
    assert motion_score(pan(speed, speed)) == pytest.approx(speed * math.sqrt(2), rel=0.2)
    assert motion_score(pan(-speed, speed)) == pytest.approx(speed * math.sqrt(2), rel=0.2)


def test_motion_score_rises_with_speed():
    scores = [motion_score(pan(speed)) for speed in SPEEDS]
    diagonal = [motion_score(pan(speed, speed)) for speed in SPEEDS]
    assert scores == sorted(scores) and diagonal == sorted(diagonal)


def test_moving_square_scores_its_speed_times_its_share_of_the_frame():
    share = 40 * 40 / (HEIGHT * WIDTH)
    scores = [motion_score(moving_square(speed)) for speed in SPEEDS]
    assert scores == sorted(scores)
    for speed, score in zip(SPEEDS, scores):
        assert speed * share <= score <= 1.5 * speed * share


def test_motion_score_is_in_pixels_of_the_original_frames():
    assert motion_score(pan(4), max_side=64) == pytest.approx(4, rel=0.05)
    assert motion_score(pan(4), max_side=None) == pytest.approx(motion_score(pan(4)))


def test_motion_score_stride_keeps_pixels_per_frame():
    assert motion_score(pan(4), stride=2) == pytest.approx(4, rel=0.2)
    assert motion_score(pan(1), stride=3) == pytest.approx(1, rel=0.2)


def test_motion_score_needs_two_frames_per_pair():
    assert motion_score(pan(2, frames=1)) == 0.0
    assert motion_score(pan(2, frames=3), stride=3) == 0.0
    with pytest.raises(ValueError, match="stride"):
        motion_score(pan(2), stride=0)


def faint(clip: np.ndarray, share: float) -> np.ndarray:
    """The clip with every level pulled towards mid-grey, keeping `share` of its distance from 128."""
    return np.clip(np.round((clip.astype(np.float32) - 128) * share + 128), 0, 255).astype(np.uint8)


def test_stretch_contrast_spreads_a_clips_levels_with_one_map_for_all_frames():
    gray = to_gray(faint(pan(2), 0.15))
    gray[-1] = np.clip(gray[-1].astype(np.int16) + 3, 0, 255)  # the last frame a little brighter
    stretched = stretch_contrast(gray)
    assert gray.max() - gray.min() < 70
    assert np.percentile(stretched, 1) <= 3 and np.percentile(stretched, 99) >= 252
    assert stretched[-1].mean() > stretched[0].mean() + 10
    flat = np.full((3, 8, 8), 90, np.uint8)
    assert np.array_equal(stretch_contrast(flat), flat)


def test_still_video_scores_no_motion_flicker_or_warp_error():
    clip = still()
    assert motion_score(clip) < 0.05
    assert flicker(clip) == 0.0
    assert warp_error(clip) < 1e-3
    assert loop_seam(clip) == 1.0


def test_brightness_jitter_raises_flicker_but_not_motion():
    for clip in (pan(2), moving_square(4)):
        jittered = with_brightness_jitter(clip, levels=10)
        assert flicker(clip) < 0.5
        assert flicker(jittered) > 10
        assert motion_score(jittered) == pytest.approx(motion_score(clip), rel=0.15, abs=0.1)


def test_warp_error_is_low_for_translation_and_high_for_independent_frames():
    translations = [warp_error(pan(speed, speed // 2)) for speed in SPEEDS]
    random_frames = warp_error(noise())
    assert max(translations) < 0.005
    assert random_frames > 0.1
    assert random_frames > 20 * max(translations)
    assert 0 <= warp_error(moving_square(4)) < 0.05


def test_warp_error_of_a_single_frame_is_zero():
    assert warp_error(pan(2, frames=1)) == 0.0


@pytest.mark.parametrize("speed", (0.5, 1, 2, 3, 4, 5))
def test_a_sliding_shape_is_intact_at_any_speed(speed):
    assert dissolution(sliding_shape(speed)) < INTACT_BELOW


@pytest.mark.parametrize("change", ("fade", "noise"))
@pytest.mark.parametrize("speed", (1, 3, 5))
def test_a_shape_that_fades_or_dissolves_is_broken_even_at_the_same_motion_score(change, speed):
    broken = sliding_shape(speed, change)
    motion = motion_score(broken)
    # the intact slide whose motion score is closest to the broken clip's
    slides = (sliding_shape(quarters / 4) for quarters in range(1, 24))
    twin = min(slides, key=lambda clip: abs(motion_score(clip) - motion))
    assert motion_score(twin) == pytest.approx(motion, rel=0.15)
    assert dissolution(twin) < INTACT_BELOW <= dissolution(broken)


@pytest.mark.parametrize("speed", (1, 2, 4))
def test_a_faint_pan_is_intact(speed):
    # luma within about 128 +- 10: unstretched, Farneback reads this pan as nearly still
    assert dissolution(faint(pan(speed, speed // 2), 0.15)) < INTACT_BELOW / 3


def test_the_first_generation_demo_dissolved_its_scene_at_bucket_240():
    strip = np.asarray(PIL.Image.open(OLD_DEMO_VIDEO).convert("RGB"))
    frames = np.stack(np.split(strip, strip.shape[1] // strip.shape[0], axis=1))
    assert frames.shape == (8, 64, 64, 3)
    assert dissolution(frames) >= INTACT_BELOW


def test_still_and_panning_videos_do_not_dissolve_but_independent_frames_do():
    assert dissolution(still()) < 0.05
    assert dissolution(pan(4, 2)) < INTACT_BELOW / 3
    assert dissolution(noise()) > 0.8
    assert dissolution(still()[:1]) == 0.0


def test_loop_seam_is_one_for_a_cycle_and_higher_for_a_jump():
    for speed in (1, 2, 4):
        assert loop_seam(looping_pan(speed)) == pytest.approx(1, abs=0.05)
    assert loop_seam(pan(1)) > 2.5
    assert loop_seam(pan(2)) > 1.5
    assert loop_seam(pan(2, frames=1)) == 1.0


def test_psnr_and_ssim_of_identical_images():
    image = texture(HEIGHT, WIDTH)
    assert psnr(image, image) == math.inf
    assert ssim(image, image) == 1.0


def test_psnr_matches_its_formula_for_a_constant_difference():
    dark, light = np.full((32, 48, 3), 100, np.uint8), np.full((32, 48, 3), 110, np.uint8)
    assert psnr(dark, light) == pytest.approx(20 * math.log10(255 / 10))
    c1 = (0.01 * 255) ** 2
    assert ssim(dark, light) == pytest.approx((2 * 100 * 110 + c1) / (100**2 + 110**2 + c1), rel=1e-6)


def test_psnr_and_ssim_fall_as_noise_grows():
    image = texture(HEIGHT, WIDTH)
    sigmas = (2, 5, 10, 20, 40)
    psnrs = [psnr(image, noisy(image, sigma)) for sigma in sigmas]
    ssims = [ssim(image, noisy(image, sigma)) for sigma in sigmas]
    assert psnrs == sorted(psnrs, reverse=True) and len(set(psnrs)) == len(psnrs)
    assert ssims == sorted(ssims, reverse=True) and len(set(ssims)) == len(ssims)
    assert psnrs[0] == pytest.approx(20 * math.log10(255 / 2), abs=0.5)
    assert 0.3 < ssims[-1] < 0.8 and 0.99 < ssims[0] < 1


def test_psnr_and_ssim_reject_different_sizes():
    with pytest.raises(ValueError, match="size"):
        psnr(texture(32, 48), texture(32, 40))
    with pytest.raises(ValueError, match="size"):
        ssim(texture(32, 48), texture(30, 48))


def test_fidelity_against_each_kind_of_reference():
    clip = still(frames=4)
    clip[1:] = noisy(clip[1:], 10)
    image = clip[0]
    tensor = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    results = [fidelity(clip, reference) for reference in (image, PIL.Image.fromarray(image), tensor)]
    assert results[0] == results[1] == results[2]
    scores = results[0]
    assert set(scores) == FIDELITY_KEYS
    assert scores["psnr_first"] == math.inf and scores["ssim_first"] == 1.0
    assert scores["psnr_mean"] == math.inf
    assert scores["ssim_mean"] == pytest.approx(np.mean([ssim(frame, image) for frame in clip]))
    assert fidelity(clip[1:], image)["psnr_mean"] == pytest.approx(
        np.mean([psnr(frame, image) for frame in clip[1:]])
    )


def test_fidelity_rejects_a_reference_of_another_size():
    with pytest.raises(ValueError, match="fitted conditioning image"):
        fidelity(still(frames=2), texture(HEIGHT, WIDTH + 2))


def test_measure_video_reports_every_key_with_a_unit():
    clip = moving_square(3)
    plain = measure_video(clip)
    assert set(plain) == VIDEO_KEYS
    assert all(isinstance(value, float) and math.isfinite(value) for value in plain.values())
    full = measure_video(clip, reference=PIL.Image.fromarray(noisy(clip[0], 5)))
    assert set(full) == VIDEO_KEYS | FIDELITY_KEYS == set(METRIC_UNITS)
    assert all(isinstance(value, float) and math.isfinite(value) for value in full.values())
    exact = measure_video(clip, reference=clip[0])
    assert exact["psnr_first"] == exact["psnr_mean"] == math.inf and exact["ssim_first"] == 1.0


def test_measure_video_matches_the_single_metrics():
    clip = with_brightness_jitter(pan(3, 1))
    measured = measure_video(clip, reference=clip[0])
    assert measured["motion_score"] == pytest.approx(motion_score(clip))
    assert measured["flicker"] == pytest.approx(flicker(clip))
    assert measured["warp_error"] == pytest.approx(warp_error(clip))
    assert measured["loop_seam"] == pytest.approx(loop_seam(clip))
    assert measured["dissolution"] == pytest.approx(dissolution(clip))
    small = sliding_shape(2)  # below the flow side: dissolution's flows are computed on enlarged frames
    assert measure_video(small)["dissolution"] == pytest.approx(dissolution(small))
    assert {key: measured[key] for key in FIDELITY_KEYS} == fidelity(clip, clip[0])


def test_measure_video_takes_engine_tensors_and_uint8_arrays_alike():
    clip = pan(2, 1)
    engine_frames = torch.from_numpy(clip).permute(0, 3, 1, 2).float() / 255
    reference = engine_frames[0]
    assert measure_video(engine_frames, reference) == measure_video(clip, clip[0])
    assert measure_video(engine_frames.numpy()) == measure_video(clip)
