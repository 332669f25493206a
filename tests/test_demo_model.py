"""The shipped demo model: loads offline by name, and its videos show the effects SVD's settings should
have, measured on synthetic scenes it never saw in training (seeds far from the training data's)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import PIL.Image
import pytest

from svdlab.api import generate
from svdlab.engine import Job, VideoEngine
from svdlab.media import frames_to_uint8
from svdlab.metrics import measure_video
from svdlab.metrics.fidelity import fidelity, psnr
from svdlab.models import PRESETS, load_model
from svdlab.models.presets import SHIPPED_MODELS
from svdlab.params import make_params
from svdlab.training.synthetic import moving_sprite_clips, render_sprite_clip

HELD_OUT_SEEDS = range(90_000, 90_005)
BUCKETS = (20, 60, 120, 180, 240)
NOISE_LEVELS = (0.02, 0.1, 0.4)
MAX_WARP_ERROR = 0.1  # mean absolute error (0..1) of flow-compensated frames: objects keep their pixels
FIRST_FRAME_PSNR_FLOOR = 25  # at the defaults; the shipped model measures 25.5 dB


@pytest.fixture(scope="module")
def demo_model():
    """The demo model as `--model demo` loads it."""
    return load_model("demo", device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def held_out_images():
    """First frames of synthetic scenes rendered like the training data, from seeds it did not use."""
    return [
        PIL.Image.fromarray(render_sprite_clip(seed, width=64, height=64, frames=1).frames[0])
        for seed in HELD_OUT_SEEDS
    ]


def mean_metrics(model, images, **settings) -> dict[str, float]:
    """Metrics of the demo's videos of `images` at `settings`, averaged over the images."""
    videos = generate(images, model, **settings)
    measured = [measure_video(video.frames, image) for video, image in zip(videos, images)]
    return {key: float(np.mean([m[key] for m in measured])) for key in measured[0]}


@pytest.fixture(scope="module")
def by_bucket(demo_model, held_out_images):
    """Mean metrics per motion bucket, other settings at the model's defaults."""
    return {b: mean_metrics(demo_model, held_out_images, motion_bucket_id=b) for b in BUCKETS}


def test_demo_is_a_shipped_svd_model_within_25_mb(demo_model):
    weights = sorted(SHIPPED_MODELS.joinpath("demo").glob("*/*.safetensors"))
    assert {path.parent.name for path in weights} == {"unet", "vae", "image_encoder"}
    assert sum(path.stat().st_size for path in weights) <= 25 * 2**20
    assert type(demo_model.unet).__name__ == "UNetSpatioTemporalConditionModel"
    assert type(demo_model.vae).__name__ == "AutoencoderKLTemporalDecoder"
    assert demo_model.describe()["name"] == "demo" and demo_model.source == "shipped"
    assert demo_model.preset == PRESETS["demo"]
    # the folder's svdlab.json, read when it is loaded by path, repeats the preset's defaults
    by_path = load_model(SHIPPED_MODELS / "demo", device="cpu", dtype="float32")
    assert replace(by_path.preset, shipped=True) == PRESETS["demo"]


def test_motion_rises_with_the_motion_bucket(by_bucket):
    motion = [by_bucket[b]["motion_score"] for b in BUCKETS]
    assert all(low < high for low, high in zip(motion, motion[1:])), motion
    assert motion[-1] >= 3 * motion[0], motion


def test_objects_stay_intact_at_every_bucket(by_bucket):
    errors = [by_bucket[b]["warp_error"] for b in BUCKETS]
    assert max(errors) < MAX_WARP_ERROR, errors


def mean_fidelity(model, images, **settings) -> dict[str, float]:
    """Fidelity metrics alone (no motion, no flow) of the demo's videos of `images`, averaged."""
    videos = generate(images, model, **settings)
    measured = [fidelity(video.frames, image) for video, image in zip(videos, images)]
    return {key: float(np.mean([m[key] for m in measured])) for key in measured[0]}


def test_fidelity_falls_as_noise_augmentation_rises(demo_model, held_out_images):
    measured = [mean_fidelity(demo_model, held_out_images, noise_aug_strength=a) for a in NOISE_LEVELS]
    first = [metrics["ssim_first"] for metrics in measured]  # what noise augmentation loosens first
    assert all(high > low for high, low in zip(first, first[1:])), first
    # NOISE_LEVELS[0] is the default: the first frame at default settings stays close to the input
    assert NOISE_LEVELS[0] == PRESETS["demo"].noise_aug_strength
    assert measured[0]["psnr_first"] >= FIRST_FRAME_PSNR_FLOOR, measured[0]


def test_a_last_frame_is_held_as_well_as_the_first_by_time_reversal_fusion(demo_model):
    clips = moving_sprite_clips(3, 8, HELD_OUT_SEEDS[0])
    params = make_params(seed=0).resolved(demo_model)
    firsts = [PIL.Image.fromarray(clip[0]) for clip in clips]
    jobs = [Job(a, params, context={0: a, 7: PIL.Image.fromarray(c[7])}) for a, c in zip(firsts, clips)]
    jobs += [Job(a, params) for a in firsts]
    made = [frames_to_uint8(result.frames) for result in VideoEngine(demo_model).run(jobs)]
    held, plain = made[:3], made[3:]
    plain_first = np.mean([psnr(video[0], clip[0]) for video, clip in zip(plain, clips)])
    assert np.mean([psnr(video[0], clip[0]) for video, clip in zip(held, clips)]) >= plain_first - 1
    assert np.mean([psnr(video[7], clip[7]) for video, clip in zip(held, clips)]) >= plain_first - 1
