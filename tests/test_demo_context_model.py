"""The shipped context demo model: loads offline by name beside `demo`, and holds the keyframes it is
given, measured on synthetic sprite videos it never saw in training (seeds from 90,000 on) against their
true frames. (Its interpolation and continuation are measured by benchmarks/interpolation.py and
benchmarks/context_frames.py; the README's model card gives the figures.)"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import PIL.Image
import pytest

from svdlab.engine import Job, VideoEngine
from svdlab.media import frames_to_uint8
from svdlab.metrics.fidelity import psnr
from svdlab.metrics.temporal import keyframe_progress
from svdlab.models import PRESETS, load_model
from svdlab.models.presets import SHIPPED_MODELS
from svdlab.params import make_params
from svdlab.training.synthetic import moving_sprite_clips

HELD_OUT_SEED = 90_000
CLIPS = 4
MIN_PROGRESS = 0.5  # rank correlation of frame number with the share of the way to the last keyframe


@pytest.fixture(scope="module")
def context_model():
    """The context demo model as `--model demo-context` loads it."""
    return load_model("demo-context", device="cpu", dtype="float32")


def test_both_demo_models_ship_within_30_mb_as_svd_folders(context_model):
    weights = sorted(SHIPPED_MODELS.glob("demo*/*/*.safetensors"))
    weights = [path for path in weights if path.parent.parent.name != "demo-upscaler"]  # tests/test_upscale
    assert {path.parent.parent.name for path in weights} == {"demo", "demo-context"}
    assert sum(path.stat().st_size for path in weights) <= 30 * 2**20
    assert type(context_model.unet).__name__ == "UNetSpatioTemporalConditionModel"
    assert context_model.unet.config.in_channels == 2 * context_model.vae.config.latent_channels + 1
    assert context_model.describe()["name"] == "demo-context" and context_model.source == "shipped"
    assert context_model.preset == PRESETS["demo-context"]
    by_path = load_model(SHIPPED_MODELS / "demo-context", device="cpu", dtype="float32")
    assert replace(by_path.preset, shipped=True) == PRESETS["demo-context"]


def test_first_and_last_keyframes_are_held_and_the_video_runs_between_them(context_model):
    clips = moving_sprite_clips(CLIPS, PRESETS["demo-context"].num_frames, HELD_OUT_SEED)
    params = make_params(seed=0).resolved(context_model)
    last = params.num_frames - 1
    firsts = [PIL.Image.fromarray(clip[0]) for clip in clips]
    held = [Job(a, params, context={0: a, last: PIL.Image.fromarray(c[last])}) for a, c in zip(firsts, clips)]
    plain = [Job(a, params) for a in firsts]
    made = {id(r.job): frames_to_uint8(r.frames) for r in VideoEngine(context_model).run(held + plain)}
    held, plain = [made[id(job)] for job in held], [made[id(job)] for job in plain]
    plain_first = np.mean([psnr(video[0], clip[0]) for video, clip in zip(plain, clips)])
    assert np.mean([psnr(video[0], clip[0]) for video, clip in zip(held, clips)]) >= plain_first - 1
    assert np.mean([psnr(video[last], clip[last]) for video, clip in zip(held, clips)]) >= plain_first - 1
    for video, clip in zip(held, clips):
        assert keyframe_progress(video, clip[0], clip[last]) >= MIN_PROGRESS
