"""svdlab's frames equal StableVideoDiffusionPipeline's for the same image, seed and settings."""

import numpy as np
import pytest
import torch

from svdlab.engine import Job, VideoEngine
from tests.conftest import make_image, params_for

COMBINATIONS = [
    {},
    {"motion_bucket_id": 300, "noise_aug_strength": 0.4, "fps": 12},
    {"motion_bucket_id": 360, "noise_aug_strength": 0.1, "fps": 25, "seed": 7},
    {"motion_bucket_id": 0, "fps": 5, "min_guidance": 1.5, "max_guidance": 2.5, "num_frames": 3},
    {"min_guidance": 1.0, "max_guidance": 1.0, "seed": 123},
    {"width": 32, "height": 64, "steps": 4, "decode_chunk_size": 3},
]


def reference_frames(model, image, p) -> np.ndarray:
    pipe = model.pipeline()
    pipe.set_progress_bar_config(disable=True)
    return pipe(
        image,
        height=p.height,
        width=p.width,
        num_frames=p.num_frames,
        num_inference_steps=p.steps,
        min_guidance_scale=p.min_guidance,
        max_guidance_scale=p.max_guidance,
        fps=p.fps,
        motion_bucket_id=p.motion_bucket_id,
        noise_aug_strength=p.noise_aug_strength,
        decode_chunk_size=p.decode_chunk_size,
        generator=torch.manual_seed(p.seed),
        output_type="np",
    ).frames[0]


@pytest.mark.parametrize(
    "settings", COMBINATIONS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()) or "defaults"
)
def test_frames_equal_diffusers_pipeline(tiny_model, settings):
    p = params_for(tiny_model, **settings)
    image = make_image(1, p.width, p.height)
    (result,) = VideoEngine(tiny_model).run([Job(image, p)])
    ours = result.frames.permute(0, 2, 3, 1).numpy()
    reference = reference_frames(tiny_model, image, p)
    assert ours.shape == reference.shape == (p.num_frames, p.height, p.width, 3)
    assert np.abs(ours - reference).max() <= 1e-4


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
