"""Context frames: jobs carry frames by index; a context model takes any, a one-frame model frame 0 (as
before, exactly) or frame 0 and the last by time-reversal fusion; the context task trains such a model;
the commands continue, loop, inbetween and interpolate videos, and refuse what they cannot do."""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import make_image, params_for
from typer.testing import CliRunner

from svdlab.api import generate
from svdlab.cli import app
from svdlab.engine import Job, VideoEngine
from svdlab.engine.conditioning import context_channels, image_to_tensor, vae_latents
from svdlab.errors import InvalidParameterError, InvalidVideoError
from svdlab.models import load_model
from svdlab.post.continuation import continue_frames
from svdlab.post.learned import model_interpolate
from svdlab.training.context import draw_patterns, pattern_frames, pattern_masks
from svdlab.training.networks import widen_for_context
from svdlab.training.synthetic import write_lossless_mp4


@pytest.fixture(scope="module")
def context_model(tmp_path_factory):
    """The tiny-random model with its input widened for context, saved and loaded back as a folder."""
    model = load_model("tiny-random", device="cpu", dtype="float32")
    widen_for_context(model.unet, model.vae.config.latent_channels)
    torch.manual_seed(0)
    with torch.no_grad():
        model.unet.conv_in.weight[:, -1].normal_(0, 0.1)  # a mask channel that changes the output
    model.preset = replace(model.preset, context=True)
    folder = model.save_pretrained(tmp_path_factory.mktemp("context") / "tiny-context")
    return load_model(folder, device="cpu", dtype="float32")


def frames_of(results) -> list[torch.Tensor]:
    return [result.frames for result in results]


def test_a_one_frame_job_with_frame_0_as_context_is_todays_job(tiny_model):
    params = params_for(tiny_model, seed=3)
    image = make_image(1)
    plain, given = VideoEngine(tiny_model).run([Job(image, params), Job(image, params, context={0: image})])
    assert torch.equal(plain.frames, given.frames)


def test_a_widened_model_starts_as_the_one_frame_model_it_came_from(tiny_model):
    unet, channels = copy.deepcopy(tiny_model.unet), tiny_model.vae.config.latent_channels
    widen_for_context(unet, channels)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, channels, 6, 8, generator=generator)
    image = torch.randn(channels, 6, 8, generator=generator)
    given, mask = torch.zeros(4, channels, 6, 8), torch.tensor([1.0, 0.0, 0.0, 0.0])
    given[0] = image
    embedding = torch.randn(1, 1, tiny_model.unet.config.cross_attention_dim, generator=generator)
    rest = (torch.tensor([0.5]), embedding, torch.tensor([[7.0, 127.0, 0.02]]))
    with torch.no_grad():
        plain = tiny_model.unet(torch.cat([x, image.expand(1, 4, -1, -1, -1)], dim=2), *rest)[0]
        widened = unet(torch.cat([x, context_channels(given, mask)[None]], dim=2), *rest)[0]
    assert torch.allclose(plain, widened, atol=1e-5)  # frame 0 held over the video, as SVD repeats its image


def test_a_context_model_ends_on_its_given_frames_as_encoded(context_model):
    params = params_for(context_model, seed=6, steps=3, noise_aug_strength=0.0)
    a, b = make_image(4), make_image(5)
    last = params.num_frames - 1
    (result,) = VideoEngine(context_model).run([Job(a, params, context={0: a, last: b})])
    encoded = vae_latents(context_model, torch.cat([image_to_tensor(a), image_to_tensor(b)]))
    scaled = encoded.float() * context_model.vae.config.scaling_factor
    assert torch.allclose(result.latents[[0, last]], scaled, atol=1e-5)
    assert not torch.allclose(result.latents[1], scaled[0], atol=1e-2)  # the frames between are generated


def test_context_channels_hold_the_nearest_given_frame():
    latents = torch.arange(1.0, 6.0).view(5, 1, 1, 1)
    channels = context_channels(latents, torch.tensor([0.0, 1.0, 0.0, 0.0, 1.0]))
    assert channels[:, 0].flatten().tolist() == [2.0, 2.0, 2.0, 5.0, 5.0]  # the earlier one at equal distance
    assert channels[:, 1].flatten().tolist() == [0.0, 1.0, 0.0, 0.0, 1.0]
    assert not context_channels(latents, torch.zeros(5)).any()


def test_context_jobs_of_every_pattern_batch_as_they_run_alone(context_model):
    params = params_for(context_model, seed=5, steps=2)
    a, b = make_image(1), make_image(2)
    contexts = [{0: a}, {0: a, 1: b}, {}, {0: b, 2: a}]
    jobs = [Job(frames.get(0), params, context=frames) for frames in contexts]
    together = frames_of(VideoEngine(context_model).run(jobs))
    alone = frames_of(VideoEngine(context_model, batch_size=1).run(jobs))
    for batched, single in zip(together, alone):
        assert torch.allclose(batched, single, atol=1e-4)
    assert not torch.allclose(together[0], together[1], atol=1e-3)  # the second frame changes the video
    assert not torch.allclose(together[0], together[2], atol=1e-3)  # no context is another video


def test_time_reversal_fusion_runs_both_ways_and_batches(tiny_model):
    params = params_for(tiny_model, seed=2)
    a, b, last = make_image(1), make_image(2), params.num_frames - 1
    jobs = [Job(a, params, context={0: a, last: b}), Job(b, params, context={0: b, last: b}), Job(a, params)]
    together = frames_of(VideoEngine(tiny_model).run(jobs))
    alone = frames_of(VideoEngine(tiny_model, batch_size=1).run(jobs))
    for batched, single in zip(together, alone):
        assert torch.allclose(batched, single, atol=1e-4)
    assert not torch.allclose(together[0], together[2], atol=1e-3)


@pytest.mark.parametrize(
    "context, words",
    [
        ({0: "a", 2: "b"}, "one-frame model"),
        ({}, "one-frame model"),
        ({0: "a", 9: "b"}, "outside the video"),
    ],
)
def test_context_a_model_cannot_take_is_refused_in_one_line(tiny_model, context, words):
    params = params_for(tiny_model)
    images = {"a": make_image(1), "b": make_image(2)}
    job = Job(images["a"], params, context={index: images[name] for index, name in context.items()})
    with pytest.raises(InvalidParameterError, match=words) as caught:
        VideoEngine(tiny_model).plan([job])
    assert "\n" not in str(caught.value)


def test_time_reversal_fusion_refuses_other_samplers(tiny_model):
    params = params_for(tiny_model, sampler="heun")
    a = make_image(1)
    with pytest.raises(InvalidParameterError, match="sampler=euler"):
        VideoEngine(tiny_model).plan([Job(a, params, context={0: a, params.num_frames - 1: a})])


def test_a_context_frame_of_another_size_is_refused(context_model):
    params = params_for(context_model)
    with pytest.raises(InvalidParameterError, match="fit it"):
        VideoEngine(context_model).plan([Job(make_image(1), params, context={0: make_image(2, 32, 32)})])


def test_patterns_give_the_frames_they_name():
    assert pattern_frames("none", 9) == []
    assert pattern_frames("first", 9) == [0]
    assert pattern_frames("first_two", 9) == [0, 1]
    assert pattern_frames("first_last", 9) == [0, 8]
    assert pattern_frames("every_2", 9) == [0, 2, 4, 6, 8]
    assert pattern_frames("every_4", 9) == [0, 4, 8]
    drawn = draw_patterns(torch.Generator().manual_seed(0), {"first": 1.0, "none": 0.0, "every_4": 3.0}, 400)
    assert "none" not in drawn and 0.65 < drawn.count("every_4") / 400 < 0.85
    assert pattern_masks(["first_last"], 4).tolist() == [[1.0, 0.0, 0.0, 1.0]]


def test_a_loop_ends_on_its_first_image_and_leaves_that_frame_out(tiny_model, tmp_path):
    params = {"steps": 3, "seed": 4}
    (looped,) = generate(make_image(3), tiny_model, loop=True, out=tmp_path, **params)
    (plain,) = generate(make_image(3), tiny_model, out=tmp_path, **params)
    assert len(looped.frames) == len(plain.frames) - 1 == looped.manifest["output"]["frames"]
    assert looped.manifest["keyframes"] == {"mode": "loop", "method": "time-reversal fusion"}
    assert looped.path != plain.path and "_loop_" in looped.path.name
    saved = json.loads(looped.path.with_suffix(".json").read_text())
    assert saved["keyframes"]["mode"] == "loop"


def test_last_frame_and_loop_together_are_refused_in_one_line(tmp_path):
    image = tmp_path / "a.png"
    make_image(1).save(image)
    result = CliRunner().invoke(
        app, ["generate", str(image), "--model", "tiny-random", "--loop", "--last-frame", str(image)]
    )
    assert result.exit_code == 2 and "choose one" in result.output
    assert len(result.output.strip().splitlines()) == 1


def sprite_video(tmp_path, frames: int = 5) -> str:
    """A short moving-square video at 64x48, written losslessly."""
    clip = np.zeros((frames, 48, 64, 3), np.uint8)
    for index in range(frames):
        clip[index, 10:30, 5 + 4 * index : 25 + 4 * index] = (200, 80, 40)
    return str(write_lossless_mp4(clip, tmp_path / "clip.mp4", 8))


def test_extend_continues_from_two_frames_on_a_context_model_and_one_on_a_one_frame_model(
    tmp_path, context_model
):
    video = sprite_video(tmp_path)
    runner = CliRunner()
    for model, given, method in [
        (str(context_model.location), 2, "2-frame"),
        ("tiny-random", 1, "last-frame"),
    ]:
        out = tmp_path / f"out-{given}"
        args = ["extend", video, "--segments", "2", "--model", model, "--steps", "2", "--out", str(out)]
        result = runner.invoke(app, [*args, "--quiet"])
        assert result.exit_code == 0, result.output
        assert method in result.output
        (manifest,) = [json.loads(path.read_text()) for path in out.glob("*.json")]
        frames = params_for(context_model).num_frames  # the same preset as tiny-random's
        assert manifest["output"]["frames"] == 5 + 2 * (frames - given)
        assert manifest["made_by"]["method"].startswith(method) and manifest["input"]["frames"] == 5


def test_interpolate_by_model_keeps_the_known_frames_and_a_one_frame_model_falls_back(
    tmp_path, context_model
):
    clip = np.stack([np.asarray(make_image(seed)) for seed in range(4)])
    params = params_for(context_model)
    made = model_interpolate(clip, 2, context_model, params)
    assert len(made) == 7 and np.array_equal(made[::2], clip)
    with pytest.raises(InvalidParameterError, match="one-frame model"):
        model_interpolate(clip, 2, load_model("tiny-random"), params)
    result = CliRunner().invoke(
        app,
        [
            "interpolate",
            sprite_video(tmp_path),
            "--method",
            "model",
            "--model",
            "tiny-random",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0 and "interpolated by flow instead of model" in result.output
    (manifest,) = [json.loads(path.read_text()) for path in tmp_path.glob("*-x2-flow.json")]
    assert manifest["made_by"]["asked"] == "model"


def test_a_video_too_short_or_unreadable_is_refused_in_one_line(tmp_path, context_model):
    one = str(write_lossless_mp4(np.zeros((1, 48, 64, 3), np.uint8), tmp_path / "one.mp4", 8))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    runner = CliRunner()
    for args, words in [
        (["extend", one, "--model", str(context_model.location)], "needs 2"),
        (["extend", str(broken), "--model", "tiny-random"], "cannot decode"),
        (["interpolate", one, "--method", "model"], "needs at least 2"),
        (["extend", str(broken), "--segments", "0"], "use 1 or more"),
    ]:
        result = runner.invoke(app, [*args, "--out", str(tmp_path / "out")])
        assert result.exit_code == 2 and words in result.output, (args, result.output)
        assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    with pytest.raises(InvalidVideoError):
        continue_frames(np.zeros((1, 48, 64, 3), np.uint8), context_model, params_for(context_model), 1)


def test_a_sweep_varies_loop_and_interpolation_and_measures_what_it_wrote(tmp_path):
    make_image(1).save(tmp_path / "a.png")
    (tmp_path / "spec.toml").write_text(
        'name = "post"\nmodel = "tiny-random"\nimages = ["a.png"]\n'
        '[grid]\nloop = [false, true]\ninterpolate = ["none", "flow", "model"]\n[fixed]\nsteps = 2\n'
    )
    runs = tmp_path / "runs"
    result = CliRunner().invoke(
        app, ["sweep", str(tmp_path / "spec.toml"), "--runs-dir", str(runs), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    made = {}
    for path in (runs / "post").glob("*.json"):
        manifest = json.loads(path.read_text())
        params, output = manifest["params"], manifest["output"]
        made[params["loop"], params["interpolate"]] = (output["frames"], output["fps"], manifest["metrics"])
        assert ("keyframes" in manifest) == params["loop"]
        interpolation = manifest.get("interpolation", {"method": "none"})
        stood_in = "flow" if params["interpolate"] == "model" else params["interpolate"]
        assert interpolation["method"] == stood_in
        assert ("asked" in interpolation) == (params["interpolate"] == "model")
    frames = params_for(load_model("tiny-random")).num_frames
    fps = params_for(load_model("tiny-random")).fps
    assert made[False, "none"][:2] == (frames, fps)
    assert made[True, "none"][:2] == (frames - 1, fps)
    assert made[False, "flow"][:2] == (2 * frames - 1, 2 * fps)
    assert made[True, "flow"][:2] == (2 * frames - 3, 2 * fps)
    assert made[False, "model"][:2] == made[False, "flow"][:2]  # tiny-random has one frame: flow stands in
    assert all("loop_seam" in metrics for _, _, metrics in made.values())


def test_generation_interpolated_by_a_context_model_keeps_its_frames_and_fills_between(context_model):
    params = {"steps": 2, "num_frames": 5, "seed": 3}
    plain = generate(make_image(2), context_model, **params)[0]
    made = generate(make_image(2), context_model, interpolate="model", interpolate_factor=2, **params)[0]
    assert made.manifest["interpolation"] == {"method": "model", "factor": 2}
    assert made.frames.shape[0] == 9 == made.manifest["output"]["frames"]
    assert torch.allclose(made.frames[::2], plain.frames, atol=1 / 255)
    between = made.frames[1::2]
    assert not torch.allclose(between, 0.5 * (made.frames[:-1:2] + made.frames[2::2]), atol=2 / 255)
