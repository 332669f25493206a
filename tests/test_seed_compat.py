"""svdlab's frames equal StableVideoDiffusionPipeline's for the same image, seed and settings."""

import pytest
import torch

from svdlab.engine import Job, VideoEngine
from svdlab.engine.reference import diffusers_frames
from tests.conftest import make_image, params_for

COMBINATIONS = [
    {},
    {"motion_bucket_id": 300, "noise_aug_strength": 0.4, "fps": 12},
    {"motion_bucket_id": 360, "noise_aug_strength": 0.1, "fps": 25, "seed": 7},
    {"motion_bucket_id": 0, "fps": 5, "min_guidance": 1.5, "max_guidance": 2.5, "num_frames": 3},
    {"min_guidance": 1.0, "max_guidance": 1.0, "seed": 123},
    {"width": 32, "height": 64, "steps": 4, "decode_chunk_size": 3},
]


def reference_frames(model, image, params) -> torch.Tensor:
    pipe = model.pipeline()
    pipe.set_progress_bar_config(disable=True)
    return diffusers_frames(pipe, image, params)


@pytest.mark.parametrize(
    "settings", COMBINATIONS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()) or "defaults"
)
def test_frames_equal_diffusers_pipeline(tiny_model, settings):
    p = params_for(tiny_model, **settings)
    image = make_image(1, p.width, p.height)
    (result,) = VideoEngine(tiny_model).run([Job(image, p)])
    reference = reference_frames(tiny_model, image, p)
    assert result.frames.shape == reference.shape == (p.num_frames, 3, p.height, p.width)
    assert (result.frames - reference).abs().max() <= 1e-4


def test_the_comparison_is_sensitive_to_every_setting(tiny_model):
    # Guard against a vacuous comparison: each setting changes the tiny model's frames well beyond 1e-4.
    image = make_image(1)
    base = params_for(tiny_model)
    (reference,) = VideoEngine(tiny_model).run([Job(image, base)])
    for change in (
        {"motion_bucket_id": 300},
        {"noise_aug_strength": 0.4},
        {"fps": 12},
        {"seed": 7},
        {"max_guidance": 1.0},
    ):
        (other,) = VideoEngine(tiny_model).run([Job(image, params_for(tiny_model, **change))])
        assert (other.frames - reference.frames).abs().max() > 1e-3, change
