"""svdlab.StableVideoDiffusionPipeline gives diffusers' frames for diffusers' calls, and fixes its traps."""

import io
import warnings

import numpy as np
import pytest
import torch
from diffusers import StableVideoDiffusionPipeline as DiffusersPipeline

import svdlab
from svdlab.errors import InvalidImageError, InvalidParameterError, SvdlabWarning
from svdlab.pipeline import StableVideoDiffusionPipeline
from tests.conftest import make_image

SIZE = {"height": 48, "width": 64, "num_inference_steps": 2}


@pytest.fixture(scope="module")
def pipes(tiny_model):
    """svdlab's pipeline and diffusers' over the same tiny-random networks."""
    ours = StableVideoDiffusionPipeline.from_model(tiny_model)
    theirs = tiny_model.pipeline()
    for pipe in (ours, theirs):
        pipe.set_progress_bar_config(disable=True)
    return ours, theirs


def seeded(*seeds):
    """Fresh CPU generators (one per seed), or one generator for one seed."""
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    return generators[0] if len(generators) == 1 else generators


def frames(pipe, *args, **kwargs) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SvdlabWarning)
        return pipe(*args, **{**SIZE, "output_type": "pt", **kwargs}).frames


def halve_latents_at_step_1(pipe, step, timestep, tensors):
    return {"latents": tensors["latents"] * 0.5 if step == 1 else tensors["latents"]}


TWO = [make_image(1), make_image(2)]
CALLS = {
    "settings": lambda: (
        (make_image(1),),
        {
            "generator": seeded(7),
            "fps": 12,
            "motion_bucket_id": 300,
            "noise_aug_strength": 0.3,
            "min_guidance_scale": 1.5,
            "max_guidance_scale": 2.5,
            "num_frames": 3,
            "decode_chunk_size": 2,
        },
    ),
    "no-guidance": lambda: ((make_image(1),), {"generator": seeded(3), "max_guidance_scale": 1.0}),
    "images-one-generator": lambda: ((TWO,), {"generator": seeded(3), "decode_chunk_size": 2}),
    "videos-per-image": lambda: ((make_image(1),), {"generator": seeded(3), "num_videos_per_prompt": 2}),
    "latents": lambda: (
        (make_image(1),),
        {"generator": seeded(3), "latents": torch.randn(1, 4, 4, 24, 32, generator=seeded(0))},
    ),
    "unresized-image": lambda: ((make_image(3, 80, 70),), {"generator": seeded(3)}),
    "callback": lambda: ((TWO,), {"generator": seeded(3), "callback_on_step_end": halve_latents_at_step_1}),
}


@pytest.mark.parametrize("call", CALLS, ids=list(CALLS))
def test_same_frames_as_diffusers(pipes, call):
    ours, theirs = pipes
    args, kwargs = CALLS[call]()
    expected = frames(theirs, *args, **kwargs)
    args, kwargs = CALLS[call]()  # fresh generators
    got = frames(ours, *args, **kwargs)
    assert got.shape == expected.shape
    assert (got - expected).abs().max() <= 1e-4


def test_output_types_and_return_dict_match_diffusers(pipes):
    ours, theirs = pipes
    image = make_image(1)
    for output_type in ("np", "latent"):
        got = ours(image, generator=seeded(3), output_type=output_type, return_dict=False, **SIZE)
        expected = theirs(image, generator=seeded(3), output_type=output_type, return_dict=False, **SIZE)
        got, expected_array = np.asarray(got), np.asarray(expected)
        assert type(got) is type(expected_array) and got.shape == expected_array.shape
        scale = max(1.0, np.abs(expected_array).max())  # latents run up to a few units; frames lie in [0, 1]
        assert np.abs(got - expected_array).max() <= 1e-4 * scale
    got = ours(image, generator=seeded(3), **SIZE).frames
    expected = theirs(image, generator=seeded(3), **SIZE).frames
    assert len(got) == 1 and len(got[0]) == len(expected[0]) == 4
    pixels, reference = np.asarray(got[0][3], dtype=int), np.asarray(expected[0][3], dtype=int)
    assert got[0][3].size == expected[0][3].size == (64, 48)
    assert np.abs(pixels - reference).max() <= 1  # 8-bit rounding of frames equal within 1e-4


def test_tensor_and_array_images_give_the_frames_of_the_same_picture(pipes):
    ours, theirs = pipes
    image = make_image(1)
    array = np.asarray(image)
    tensor = torch.tensor(array).permute(2, 0, 1).float().div(255)
    expected = frames(theirs, image, generator=seeded(3))
    for source in (tensor, [array]):
        assert (frames(ours, source, generator=seeded(3)) - expected).abs().max() <= 1e-4
    with pytest.raises(ValueError, match="doesn't match model"):
        frames(theirs, tensor[None], generator=seeded(3))  # diffusers skips the CLIP resize of tensors
    with pytest.raises(ValueError, match="has to be of type"):
        frames(theirs, array, generator=seeded(3))
    wrong = frames(theirs, [array], generator=seeded(3))  # a list of uint8 arrays is VAE-encoded as 0..255
    assert (wrong - expected).abs().max() > 0.05


def test_a_path_and_an_image_of_another_size_share_a_call(pipes, tmp_path):
    ours, theirs = pipes
    path, other = tmp_path / "first.png", make_image(3, 80, 70)
    make_image(1).save(path)
    got = frames(ours, [str(path), other], generator=seeded(4, 5), num_inference_steps=1)
    for video, (image, seed) in enumerate(((make_image(1), 4), (other, 5))):
        alone = frames(theirs, image, generator=seeded(seed), num_inference_steps=1)
        assert (got[video] - alone[0]).abs().max() <= 1e-4


def test_several_images_with_several_videos_each_pair_each_video_with_its_image(pipes):
    ours, theirs = pipes
    starts = torch.randn(4, 4, 4, 24, 32)
    one_step = {"num_inference_steps": 1}
    got = frames(ours, TWO, num_videos_per_prompt=2, generator=seeded(3), latents=starts, **one_step)
    pixels = 3 * 48 * 64
    for video in (1, 2):  # the second video of image 0 and the first of image 1
        generator = seeded(3)
        torch.randn(video // 2 * pixels, generator=generator)  # image i's augmentation noise is the i-th draw
        alone = frames(
            theirs, TWO[video // 2], generator=generator, latents=starts[video : video + 1], **one_step
        )
        assert (got[video] - alone[0]).abs().max() <= 1e-4, video
    batched = frames(theirs, TWO, num_videos_per_prompt=2, generator=seeded(3), latents=starts, **one_step)
    assert (
        batched[1] - got[1]
    ).abs().max() > 1e-2  # diffusers pairs image 0's embedding with image 1's latent


def test_decode_chunks_never_straddle_two_videos(pipes):
    ours, theirs = pipes
    got = frames(ours, TWO, generator=seeded(4, 5), decode_chunk_size=3)
    for video, seed in enumerate((4, 5)):
        alone = frames(theirs, TWO[video], generator=seeded(seed), decode_chunk_size=3)
        assert (got[video] - alone[0]).abs().max() <= 1e-4
    batched = frames(theirs, TWO, generator=seeded(4, 5), decode_chunk_size=3)
    assert (batched[1] - got[1]).abs().max() > 1e-3  # frames 3..5 of diffusers' batch mix both videos


def test_settings_per_video_equal_separate_calls_and_share_the_engine(pipes):
    ours, _ = pipes
    image = make_image(4)
    settings = {"motion_bucket_id": [30, 200], "fps": [6, 14], "noise_aug_strength": [0.05, 0.3]}
    clip_before = ours.engine.counts["clip"]
    got = frames(ours, [image, image], generator=seeded(8, 9), **settings)
    assert ours.engine.counts["clip"] - clip_before == 1  # one embedding for the shared image
    for video, seed in enumerate((8, 9)):
        one = {key: values[video] for key, values in settings.items()}
        assert (frames(ours, image, generator=seeded(seed), **one)[0] - got[video]).abs().max() <= 1e-4
    with pytest.raises(InvalidParameterError, match="motion_bucket_id has 3 values but this call makes 2"):
        frames(ours, [image, image], motion_bucket_id=[1, 2, 3])


def test_bad_calls_fail_with_a_message_that_says_what_to_do(pipes):
    ours, _ = pipes
    image = make_image(1)
    cases = [
        ({"sigmas": [700.0, 1.0]}, "sigmas: custom noise levels are not supported"),
        ({"output_type": "mp4"}, "output_type='mp4' is not allowed: choose one of pil, np, pt, latent"),
        ({"callback_on_step_end_tensor_inputs": ["noise_pred"]}, "may only name latents, not noise_pred"),
        ({"generator": seeded(1, 2, 3)}, "generator is a list of 3 but this call makes 1 videos"),
        ({"latents": torch.zeros(1, 2, 4, 24, 32)}, r"latents have shape \(1, 2, 4, 24, 32\) but this call"),
        ({"height": 50}, "height=50 is not a multiple of"),
    ]
    for kwargs, message in cases:
        with pytest.raises(InvalidParameterError, match=message):
            frames(ours, image, **kwargs)
    with pytest.raises(InvalidImageError, match=r"float pixel values must lie in \[0, 1\]"):
        frames(ours, torch.ones(3, 48, 64) * 2)
    with pytest.raises(InvalidParameterError, match="from_pretrained does not take revision"):
        StableVideoDiffusionPipeline.from_pretrained("tiny-random", revision="main")


def test_saves_loads_and_builds_from_components_like_diffusers(tiny_model, pipes, tmp_path):
    ours, theirs = pipes
    image = make_image(5)
    expected = frames(theirs, image, generator=seeded(3))
    ours.save_pretrained(tmp_path / "saved", variant="fp16")
    assert (tmp_path / "saved" / "unet" / "diffusion_pytorch_model.fp16.safetensors").is_file()
    reloaded = StableVideoDiffusionPipeline.from_pretrained(tmp_path / "saved", variant="fp16")
    assert reloaded.device == torch.device("cpu") and reloaded.dtype == torch.float32
    assert reloaded.model_name == str((tmp_path / "saved").resolve())  # what a recorded sweep names
    by_diffusers = DiffusersPipeline.from_pretrained(tmp_path / "saved", variant="fp16")
    built = StableVideoDiffusionPipeline(**theirs.components)
    assert built.unet is tiny_model.unet and set(built.components) == set(theirs.components)
    for pipe in (reloaded, by_diffusers, built):
        pipe.set_progress_bar_config(disable=True)
        assert (frames(pipe, image, generator=seeded(3)) - expected).abs().max() <= 1e-4
    half = StableVideoDiffusionPipeline.from_pretrained(
        tmp_path / "saved", variant="fp16", torch_dtype=torch.bfloat16
    )
    assert half.dtype == half.unet.dtype == torch.bfloat16
    assert half.to(torch.float32).unet.dtype == torch.float32 and half.to("cpu", torch.float32) is half


def test_offload_without_an_accelerator_warns_and_changes_nothing(pipes):
    ours, _ = pipes
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("this machine has an accelerator, so offload takes effect")
    for enable in (ours.enable_model_cpu_offload, ours.enable_sequential_cpu_offload):
        with pytest.warns(SvdlabWarning, match="no accelerator"):
            enable()
    assert ours.device == torch.device("cpu") and ours.model.memory["offload"] == "none"


def test_progress_bar_follows_its_config_and_the_class_is_exported_lazily(pipes):
    ours, _ = pipes
    stream = io.StringIO()
    ours.set_progress_bar_config(file=stream, desc="svd")
    try:
        frames(ours, make_image(1), num_inference_steps=2)
    finally:
        ours.set_progress_bar_config(disable=True)
    assert "svd" in stream.getvalue() and "2/2" in stream.getvalue()  # one bar over the call's steps
    assert svdlab.StableVideoDiffusionPipeline is StableVideoDiffusionPipeline
