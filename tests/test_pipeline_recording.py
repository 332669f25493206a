"""A script's pipeline calls, recorded, become a sweep spec whose jobs make the same videos."""

import pytest
import torch

from svdlab.engine import VideoEngine
from svdlab.errors import InvalidParameterError, SvdlabWarning
from svdlab.experiments.planner import plan_sweep
from svdlab.experiments.spec import load_spec
from svdlab.pipeline import CallRecording, StableVideoDiffusionPipeline
from tests.conftest import make_image

SIZE = {"height": 48, "width": 64, "num_inference_steps": 2}
ONE_STEP = {**SIZE, "num_inference_steps": 1}


@pytest.fixture(scope="module")
def pipe():
    pipe = StableVideoDiffusionPipeline.from_pretrained("tiny-random")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_recorded_calls_become_a_sweep_that_makes_the_same_videos(pipe, tmp_path):
    image = make_image(6)  # at the frame size: diffusers embeds an image before resizing it, a sweep after
    made = {}
    with pipe.recording() as calls:
        for bucket in (40, 200):
            result = pipe(
                image, motion_bucket_id=bucket, generator=torch.manual_seed(42), output_type="pt", **SIZE
            )
            made[bucket] = result.frames[0]
        pipe(image, output_type="latent", **ONE_STEP)  # no generator: nothing a seed can replay
    pipe(image, output_type="latent", **ONE_STEP)  # after the block: not recorded
    assert len(calls.videos) == 3
    with pytest.warns(SvdlabWarning, match="1 of the 3 recorded videos are left out of my study.toml"):
        path = calls.save_sweep_spec(tmp_path / "my study.toml")
    spec = load_spec(path)
    assert (spec.name, spec.model, spec.images) == (
        "my-study",
        "tiny-random",
        ["my study-images/image-1.png"],
    )
    assert spec.grid == {"motion_bucket_id": [40, 200]}
    assert {key: spec.fixed[key] for key in ("seed", "steps", "width", "height", "fit")} == {
        "seed": 42,
        "steps": 2,
        "width": 64,
        "height": 48,
        "fit": "stretch",
    }
    jobs = plan_sweep(spec, pipe.model, path.parent)
    results = list(VideoEngine(pipe.model, batch_size=2).run([job.engine_job() for job in jobs]))
    assert sorted(result.job.params.motion_bucket_id for result in results) == [40, 200]
    for result in results:
        assert (result.frames - made[result.job.params.motion_bucket_id]).abs().max() <= 1e-4


def test_a_grid_larger_than_the_calls_is_said_and_a_nameless_model_is_refused(pipe, tmp_path):
    image = make_image(7)
    with pipe.recording() as calls:
        for bucket, noise in ((40, 0.1), (200, 0.1), (40, 0.3)):
            pipe(
                image,
                motion_bucket_id=bucket,
                noise_aug_strength=noise,
                generator=torch.manual_seed(1),
                output_type="latent",
                **ONE_STEP,
            )
    with pytest.warns(SvdlabWarning, match="4 videos, of which your calls made 3"):
        spec = load_spec(calls.save_sweep_spec(tmp_path / "study.toml"))
    assert spec.grid == {"motion_bucket_id": [40, 200], "noise_aug_strength": [0.1, 0.3]}
    nameless = CallRecording(model_name=None)
    nameless.videos = calls.videos
    with pytest.raises(InvalidParameterError, match="built from components.*pass model=folder"):
        nameless.save_sweep_spec(tmp_path / "other.toml")
