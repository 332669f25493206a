"""Upscaling: the shipped learned video upscaler measured on held-out sprite videos against their true
128x128 frames (seeds from 90,000 on, which no training run uses), windows and tiles, the command and its
manifests, the cascade after generation and in sweeps, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from benchmarks.upscaling import held_out_pairs, scores, upscaled_by
from svdlab.api import generate
from svdlab.cli import app
from svdlab.errors import ModelNotAvailableError
from svdlab.experiments.runner import open_sweep, run_sweep
from svdlab.media import write_video
from svdlab.media.videos import read_video
from svdlab.models import load_model
from svdlab.models.presets import SHIPPED_MODELS
from svdlab.models.upscaler import load_upscaler
from svdlab.post.upscale import make_upscaler, window_starts
from tests.conftest import make_image

CLIPS = 4
PER_FRAME_SR = Path(__file__).parent / "data" / "compact-2x-16000.safetensors"


@pytest.fixture(scope="module")
def upscaler_model():
    """The demo upscaler as `--model demo-upscaler` loads it."""
    return load_upscaler("demo-upscaler", device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def measured(upscaler_model):
    """Scores against the truth of the learned upscaler, the same network frame by frame, a per-frame
    super-resolution model (a Real-ESRGAN Compact that `benchmarks/upscaling.py --train-sr 16000` trained
    on the upscaler's training scenes: 41 dB on the benchmark's videos, 1 dB above the upscaler) and
    bicubic."""
    pairs = held_out_pairs(CLIPS)
    truth = [high for _, high in pairs]
    methods = ("model", "per-frame", "sr", "bicubic")
    return {
        method: scores(upscaled_by(method, pairs, upscaler_model, str(PER_FRAME_SR))[0], truth)
        for method in methods
    }


def test_the_demo_upscaler_ships_within_40_mb_beside_the_demo_models(upscaler_model):
    weights = sorted(SHIPPED_MODELS.glob("demo*/*/*.safetensors"))
    assert {path.parent.parent.name for path in weights} == {"demo", "demo-context", "demo-upscaler"}
    assert sum(path.stat().st_size for path in weights) <= 40 * 2**20
    unet = upscaler_model.unet
    assert type(unet).__name__ == "UNetSpatioTemporalConditionModel"
    assert (unet.config.in_channels, unet.config.out_channels) == (96, 48)  # 3 x 4 x 4 cells, noisy + input
    assert upscaler_model.describe()["name"] == "demo-upscaler" and upscaler_model.preset.scale == 2
    with pytest.raises(ModelNotAvailableError, match="video upscaler, not an image-to-video model"):
        load_model("demo-upscaler")


def test_the_learned_upscaler_beats_bicubic_and_warps_truer_than_per_frame_upscalers(measured):
    model, per_frame, sr, bicubic = (measured[key] for key in ("model", "per-frame", "sr", "bicubic"))
    assert model["ssim"] > bicubic["ssim"] and model["psnr"] > bicubic["psnr"]
    assert model["warp_error"] < per_frame["warp_error"]  # the temporal layers see the whole window
    assert model["warp_error"] < sr["warp_error"]  # 1 dB nearer the truth, but frame by frame


def test_windows_cover_a_long_video_and_agree_where_they_meet(upscaler_model):
    assert window_starts(8, 8, 2) == [0] and window_starts(5, 8, 2) == [0]
    assert window_starts(15, 8, 2) == [0, 6, 7] and window_starts(20, 8, 2) == [0, 6, 12]
    low, high = held_out_pairs(1, frames=15)[0]
    upscaler = make_upscaler("model", 2, model=upscaler_model, seed=3)
    made = upscaler(low)
    assert made.shape == high.shape and made.dtype == np.uint8
    alone = make_upscaler("model", 2, model=upscaler_model, seed=3)(low[:8])
    assert np.array_equal(made[:6], alone[:6])  # frames no other window shares are the first window's
    steps = np.abs(np.diff(made.astype(float), axis=0)).mean(axis=(1, 2, 3))
    true_steps = np.abs(np.diff(high.astype(float), axis=0)).mean(axis=(1, 2, 3))
    assert np.max(steps - true_steps) < 3  # no jump where one window hands over to the next


def test_tiles_cost_no_fidelity_against_whole_frames(upscaler_model):
    pairs = held_out_pairs(2)
    truth = [high for _, high in pairs]
    whole = scores([make_upscaler("model", 2, model=upscaler_model)(low) for low, _ in pairs], truth)
    tiled = scores([make_upscaler("model", 2, model=upscaler_model, tile=32)(low) for low, _ in pairs], truth)
    assert tiled["psnr"] > whole["psnr"] - 0.5 and tiled["ssim"] > whole["ssim"] - 0.005


def test_at_temperature_0_the_seed_changes_nothing_and_at_1_it_draws_the_starting_noise(upscaler_model):
    low = held_out_pairs(1, frames=4)[0][0]

    def upscaled(seed: int, temperature: float | None) -> np.ndarray:
        upscaler = make_upscaler("model", 2, model=upscaler_model, seed=seed, temperature=temperature)
        return upscaler(low)

    assert upscaler_model.preset.temperature == 0.0
    assert np.array_equal(upscaled(1, None), upscaled(2, None))
    assert np.array_equal(upscaled(1, None), upscaled(1, 0.0))
    assert not np.array_equal(upscaled(1, 1.0), upscaled(2, 1.0))


def test_the_upscale_command_writes_each_video_with_its_manifest(tmp_path):
    sources = []
    for index, (low, _) in enumerate(held_out_pairs(2, frames=6)):
        sources.append(write_video(low, tmp_path / f"clip{index}.mp4", fps=8, format="mp4"))
    out = tmp_path / "out"
    runner = CliRunner()
    result = runner.invoke(app, ["upscale", *map(str, sources), "--scale", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    frames, fps = read_video(out / "clip0-x2-model.mp4")
    assert frames.shape == (6, 128, 128, 3) and fps == 8
    manifest = json.loads((out / "clip1-x2-model.json").read_text())
    made_by = manifest["made_by"]
    assert made_by["operation"] == "upscale" and made_by["method"] == "model" and made_by["scale"] == 2
    assert made_by["model"]["name"] == "demo-upscaler" and len(made_by["model"]["weights_sha256"]) == 64
    assert made_by["window"] == {"frames": 8, "overlap": 2} and made_by["tile"] is None
    assert made_by["temperature"] == 0.0 and made_by["steps"] == 1
    assert manifest["input"]["file"] == str(sources[1]) and manifest["output"]["width"] == 128
    lanczos = runner.invoke(
        app, ["upscale", str(sources[0]), "--scale", "4", "--method", "lanczos", "--out", str(out)]
    )
    assert lanczos.exit_code == 0, lanczos.output
    assert read_video(out / "clip0-x4-lanczos.mp4")[0].shape == (6, 256, 256, 3)


def test_generate_runs_keyframes_interpolation_and_upscaling_in_order(tmp_path):
    video = generate(
        make_image(1, 64, 64), "demo", steps=4, interpolate="flow", upscale=2, out=tmp_path, device="cpu"
    )[0]
    frames, fps = read_video(video.path)
    assert frames.shape == (15, 128, 128, 3) and fps == 16
    manifest = video.manifest
    stages = manifest["cascade"]
    assert [stage["stage"] for stage in stages] == ["keyframes", "interpolate", "upscale"]
    assert [(s["count"], s["width"], s["fps"]) for s in stages] == [(8, 64, 8), (15, 64, 16), (15, 128, 16)]
    assert (
        all(stage["seconds"] > 0 for stage in stages)
        and "metrics" in stages[1]
        and "metrics" not in stages[2]
    )
    assert manifest["upscale"]["model"]["name"] == "demo-upscaler" and manifest["timings"]["upscale_s"] > 0
    assert manifest["output"]["width"] == 128 and manifest["params"]["upscale"] == 2


def test_a_sweep_varies_the_upscaling_method_and_measures_every_stage(tmp_path):
    image = make_image(2, 64, 64)
    image.save(tmp_path / "scene.png")
    (tmp_path / "spec.toml").write_text(
        'name = "post"\nmodel = "demo"\nimages = ["scene.png"]\n[fixed]\nsteps = 3\n'
        '[post]\nupscale = 2\nupscale_method = ["bicubic", "model"]\n'
    )
    sweep = open_sweep(tmp_path / "spec.toml", tmp_path / "runs", device="cpu")
    assert run_sweep(sweep, progress=False) == 2
    rows = sweep.store.results("post")
    assert sorted(row["upscale_method"] for row in rows) == ["bicubic", "model"]
    assert len({row["key"] for row in rows}) == 2
    for row in rows:
        assert row["keyframes.motion_score"] >= 0 and row["motion_score"] >= 0
        assert read_video(tmp_path / "runs" / row["video"])[0].shape == (8, 128, 128, 3)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--scale", "3"], "scale=3 is not allowed: choose 2 or 4"),
        (["--method", "magic"], "upscale method='magic' is not allowed"),
        (["--scale", "4"], "demo-upscaler is a 2x upscaler: use --scale 2"),
        (["--method", "sr"], "--method sr needs --sr-model FILE"),
        (["--method", "sr", "--sr-model", "weights.pth"], "--allow-pickle"),
        (["--model", "demo"], "not an upscaler"),
        (["--tile", "4"], "tile=4 is not allowed"),
        (["--temperature", "1.5"], "temperature=1.5 is not allowed"),
    ],
)
def test_bad_upscale_input_fails_in_one_line_before_any_work(tmp_path, arguments, message):
    source = write_video(held_out_pairs(1, frames=4)[0][0], tmp_path / "clip.mp4", fps=8, format="mp4")
    (tmp_path / "weights.pth").write_bytes(b"not a model")
    out = tmp_path / "out"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        result = CliRunner().invoke(app, ["upscale", str(source), *arguments, "--out", str(out)])
    assert result.exit_code == 2 and message in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())


def test_videos_the_upscaler_cannot_take_and_models_without_one_are_refused(tmp_path, tiny_model):
    odd = write_video(np.zeros((4, 60, 60, 3), np.uint8), tmp_path / "odd.mp4", fps=8, format="mp4")
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    runner = CliRunner()
    for source, message in ((odd, "multiples of 8"), (tmp_path / "broken.mp4", "broken.mp4")):
        result = runner.invoke(app, ["upscale", str(source), "--out", str(tmp_path / "out")])
        assert result.exit_code == 2 and message in result.output, result.output
    from svdlab.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="names no learned upscaler"):
        generate(make_image(), tiny_model, steps=2, upscale=2)
    lanczos = generate(make_image(), tiny_model, steps=2, upscale=2, upscale_method="lanczos")[0]
    assert tuple(lanczos.frames.shape[-2:]) == (96, 128)
    assert torch.all(lanczos.frames >= 0)


def test_the_command_runs_your_own_super_resolution_weights_and_names_them(tmp_path):
    from safetensors.torch import save_file

    from svdlab.post.sr_model import import_spandrel

    import_spandrel()
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    weights = tmp_path / "compact-2x.safetensors"
    save_file(Compact(num_in_ch=3, num_out_ch=3, num_feat=16, num_conv=2, upscale=2).state_dict(), weights)
    source = write_video(held_out_pairs(1, frames=4)[0][0], tmp_path / "clip.mp4", fps=8, format="mp4")
    arguments = ["upscale", str(source), "--method", "sr", "--sr-model", str(weights), "--stabilise", "0.5"]
    result = CliRunner().invoke(app, [*arguments, "--tile", "32", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert read_video(tmp_path / "out" / "clip-x2-sr.mp4")[0].shape == (4, 128, 128, 3)
    made_by = json.loads((tmp_path / "out" / "clip-x2-sr.json").read_text())["made_by"]
    assert "Compact" in made_by["sr_model"]["architecture"] and made_by["sr_model"]["scale"] == 2
    assert made_by["sr_model"]["file"] == weights.name and len(made_by["sr_model"]["sha256"]) == 64
    assert made_by["tile"] == 32 and made_by["stabilise"] == 0.5


def test_post_sections_vary_lists_and_refuse_what_is_not_post_processing(tmp_path):
    from svdlab.errors import InvalidParameterError
    from svdlab.experiments.spec import load_spec

    spec = load_spec("examples/cascade_sweep.toml")
    assert spec.axes() == {"upscale_method": ["model", "lanczos"]}
    assert [point["upscale_method"] for point in spec.combinations()] == ["model", "lanczos"]
    assert all(point["upscale"] == 2 and point["interpolate"] == "flow" for point in spec.combinations())
    head = 'name = "bad"\nimages = ["a.png"]\n'
    for body, message in (
        ("[post]\nmotion_bucket_id = 3\n", "post.motion_bucket_id is not a post-processing setting"),
        ("[post]\nupscale = 3\n", "post.upscale"),
        ("[fixed]\nupscale = 2\n[post]\nupscale = 2\n", "also in [grid] or [fixed]"),
    ):
        (tmp_path / "bad.toml").write_text(head + body)
        with pytest.raises(InvalidParameterError, match=message.replace("[", r"\[").replace("]", r"\]")):
            load_spec(tmp_path / "bad.toml")
