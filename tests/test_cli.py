"""The svdlab command line: generate end to end (on the default model, demo), errors, warnings, models."""

import hashlib
import json

import av
import PIL.Image
import pytest
from typer.testing import CliRunner

from svdlab.cli import app
from tests.conftest import make_image

FAST_ARGS = ["--steps", "2", "--quiet"]


@pytest.fixture
def runner():
    return CliRunner()


def test_generate_writes_videos_and_manifests(runner, tmp_path):
    images = []
    for i in range(2):
        images.append(tmp_path / f"photo{i}.png")
        make_image(i, 160, 90).save(images[-1])
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "generate",
            *map(str, images),
            "--motion-bucket-id",
            "180",
            "--fps",
            "8",
            "--out",
            str(out),
            *FAST_ARGS,
        ],
    )
    assert result.exit_code == 0, result.output
    videos = sorted(out.glob("*.mp4"))
    assert (
        "warning: " in result.output
        and "--fit crop cuts away 44% of the image to reach 64x64" in result.output
    )
    names = [v.name for v in videos]
    assert [name[: -len("_12345678.mp4")] for name in names] == [
        "photo0_demo_mb180_aug0.02_fps8_seed42",
        "photo1_demo_mb180_aug0.02_fps8_seed42",
    ]
    assert names[0][-12:] == names[1][-12:]  # the same settings hash
    with av.open(str(videos[0])) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.width, stream.height) == (64, 64)  # the default model, demo, at its defaults
        assert sum(1 for _ in container.decode(stream)) == 8
    manifest = json.loads(videos[0].with_suffix(".json").read_text())
    assert manifest["params"]["motion_bucket_id"] == 180 and manifest["params"]["seed"] == 42
    assert manifest["params"]["steps"] == 2 and manifest["params"]["fit"] == "crop"
    assert manifest["model"]["name"] == "demo" and manifest["model"]["source"] == "shipped"
    assert len(manifest["model"]["weights_sha256"]) == 64
    assert manifest["image"]["source"] == str(images[0]) and manifest["image"]["original_size"] == [160, 90]
    assert set(manifest["versions"]) >= {"svdlab", "diffusers", "torch", "transformers"}
    assert manifest["timings"]["sampling_s"] > 0 and manifest["output"]["file"] == videos[0].name
    assert not list(out.glob(".*"))  # no temp files left behind


def test_one_bad_image_is_reported_and_the_others_still_run(runner, tmp_path):
    good = tmp_path / "good.png"
    make_image(0).save(good)
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["generate", str(bad), str(good), "--out", str(out), "--format", "gif", *FAST_ARGS]
    )
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "notes.txt" in errors[0]
    assert "Traceback" not in result.output
    assert [p.name[:-13] for p in out.glob("*.gif")] == ["good_demo_mb127_aug0.02_fps8_seed42"]


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["--num-frames", "0"], "num_frames=0"),
        (["--steps", "0"], "steps=0"),
        (["--size", "30x30"], "width=30 is not a multiple of 8"),
        (["--size", "wide"], "size='wide'"),
        (["--model", "no-such-model"], "unknown model 'no-such-model'"),
        (["--format", "avi"], "format='avi'"),
        (["--fit", "zoom"], "fit='zoom'"),
        (["--offload", "disk"], "offload='disk'"),
        (["--sampler", "ddim"], "sampler='ddim' is not allowed: input should be 'euler', 'heun', 'dpmpp_2m'"),
        (
            ["--schedule", "cosine"],
            "schedule='cosine' is not allowed: input should be 'karras' or 'exponential'",
        ),
        (["--guidance-interval", "5"], "guidance_interval='5' is not START:END"),
        (
            ["--guidance-interval", "2:1"],
            "guidance_interval=2:1 is not allowed: use START:END with 0 <= START < END",
        ),
        (["--guidance-interval", "0:3"], "guidance_interval=0:3 reaches past the 2 steps"),
        (["--cache-interval", "0"], "cache_interval=0 is not allowed"),
    ],
)
def test_impossible_values_fail_before_any_work(runner, tmp_path, args, phrase):
    image = tmp_path / "a.png"
    make_image(0).save(image)
    out = tmp_path / "out"
    result = runner.invoke(app, ["generate", str(image), "--out", str(out), *FAST_ARGS, *args])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and phrase in lines[0], result.output
    assert not out.exists()


def test_values_outside_training_warn_and_still_make_the_video(runner, tmp_path):
    image = tmp_path / "a.png"
    make_image(0).save(image)
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "generate",
            str(image),
            "--motion-bucket-id",
            "300",
            "--noise-aug-strength",
            "0.4",
            "--out",
            str(out),
            *FAST_ARGS,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "warning: motion_bucket_id=300 is above 255" in result.output
    assert "warning: noise_aug_strength=0.4 is above 0.15" in result.output
    assert len(list(out.glob("*.mp4"))) == 1


def test_models_lists_the_presets(runner):
    result = runner.invoke(app, ["models"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    for name in (
        "svd",
        "svd-xt",
        "svd-xt-1.1",
        "demo",
        "demo-context",
        "demo-upscaler",
        "tiny-random",
        "stabilityai/stable-video-diffusion-img2vid-xt",
    ):
        assert name in result.output


def test_settings_that_change_the_frames_change_the_file_name(runner, tmp_path):
    image = tmp_path / "a.png"
    make_image(0).save(image)
    out = tmp_path / "out"
    for args in ([], ["--steps", "3"], ["--max-guidance", "2"], ["--size", "64x48"]):
        result = runner.invoke(app, ["generate", str(image), "--out", str(out), *FAST_ARGS, *args])
        assert result.exit_code == 0, result.output
    assert len(list(out.glob("*.mp4"))) == 4 and len(list(out.glob("*.json"))) == 4


def test_a_file_that_other_settings_made_is_replaced_only_with_overwrite(runner, tmp_path):
    image = tmp_path / "a.png"
    make_image(0).save(image)
    out = tmp_path / "out"
    command = ["generate", str(image), "--out", str(out), *FAST_ARGS]
    assert runner.invoke(app, command).exit_code == 0
    (video,) = out.glob("*.mp4")
    manifest = video.with_suffix(".json")
    assert runner.invoke(app, command).exit_code == 0  # the same settings again: the same video, no harm
    make_image(1).save(image)  # another picture under the same name
    result = runner.invoke(app, command)
    assert result.exit_code == 2 and "already exists" in result.output and "--overwrite" in result.output
    assert json.loads(manifest.read_text())["image"]["pixels_sha256"] != _pixels_sha256(image)
    result = runner.invoke(app, [*command, "--overwrite"])
    assert result.exit_code == 0, result.output
    assert json.loads(manifest.read_text())["image"]["pixels_sha256"] == _pixels_sha256(image)


def test_png_frames_get_their_manifest_beside_them_with_the_full_name(runner, tmp_path):
    image = tmp_path / "a.png"
    make_image(0).save(image)
    out = tmp_path / "out"
    args = ["--noise-aug-strength", "0.05", "--format", "png", "--out", str(out), *FAST_ARGS]
    result = runner.invoke(app, ["generate", str(image), *args])
    assert result.exit_code == 0, result.output
    (folder,) = (path for path in out.iterdir() if path.is_dir())
    assert "_aug0.05_" in folder.name and folder.name.endswith("_frames")
    manifest = out / f"{folder.name}.json"
    assert sorted(path.name for path in out.iterdir()) == sorted([folder.name, manifest.name])
    assert json.loads(manifest.read_text())["output"]["file"] == folder.name


def _pixels_sha256(path) -> str:
    return hashlib.sha256(PIL.Image.open(path).convert("RGB").tobytes()).hexdigest()


def _lines_fit(output: str, width: int = 80) -> bool:
    return all(len(line) <= width for line in output.splitlines())


def test_models_fits_80_columns_marks_the_default_and_names_its_defaults(runner):
    result = runner.invoke(app, ["models"], env={"COLUMNS": "80"})
    assert result.exit_code == 0 and _lines_fit(result.output), result.output
    lines = result.output.splitlines()
    at = next(index for index, line in enumerate(lines) if "│ demo " in line)
    demo_line, following = lines[at], lines[at + 1]
    assert "(default)" in following
    assert "8 frames 64x64" in demo_line and "fps 8, 12 steps" in following
    assert "stabilityai/stable-video-diffusion-" in result.output and "…" not in result.output  # wrapped
    assert "mg2vid-xt-1-1" in result.output


def test_runs_list_and_show_fit_80_columns(runner, tmp_path):
    from svdlab.experiments.store import Store
    from svdlab.metrics import METRIC_UNITS
    from tests.test_report import _Job

    store = Store(tmp_path)
    store.start_experiment("odd", {"name": "odd", "grid": {"motion_bucket_id": [60, 200]}}, "tiny-random")
    for image in ("a-rather-long-image-name.png", "b.png"):
        for bucket in (60, 200):
            for fit in ("crop", "pad"):
                job = _Job(f"{image}{bucket}{fit}", image, {"motion_bucket_id": bucket, "fit": fit})
                manifest = {"model": {"name": "tiny-random"}, "timings": {}}
                video = {"path": "v.mp4", "manifest": "m", "sha256": "s"}
                store.record_done("odd", job, manifest, video, dict.fromkeys(METRIC_UNITS, 12.3456789))
    store.close()
    listed = runner.invoke(app, ["runs", "list", "--runs-dir", str(tmp_path)], env={"COLUMNS": "80"})
    assert listed.exit_code == 0 and "odd" in listed.output and _lines_fit(listed.output), listed.output
    narrow = runner.invoke(app, ["runs", "show", "odd", "--runs-dir", str(tmp_path)], env={"COLUMNS": "80"})
    assert narrow.exit_code == 0 and _lines_fit(narrow.output), narrow.output
    assert "…" not in narrow.output  # nothing is cut short: a block per job instead of a squeezed table
    assert narrow.output.count("motion_bucket_id 200") == 4 and narrow.output.count("psnr_first 12.35") == 8
    wide = runner.invoke(app, ["runs", "show", "odd", "--runs-dir", str(tmp_path)], env={"COLUMNS": "200"})
    assert "┃ image" in wide.output and "psnr_first" in wide.output


def _commands(group, path=()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name)


def test_every_command_takes_h_and_shows_examples_and_types_as_users_write_them(runner):
    import typer.main

    from svdlab.models import PRESETS

    for path in _commands(typer.main.get_command(app)):
        result = runner.invoke(app, [*path, "-h"], env={"COLUMNS": "100"})
        assert result.exit_code == 0, (path, result.output)
        assert "Examples:" in result.output and f"svdlab {' '.join(path)} " in result.output, path
        assert "<" not in result.output and "{" not in result.output, (path, result.output)
    generated = runner.invoke(app, ["generate", "-h"], env={"COLUMNS": "200"}).output
    assert "generate [OPTIONS] IMAGE..." in generated and "--size" in generated
    steps = next(line for line in generated.splitlines() if "--steps" in line)
    assert f"demo/demo-context {PRESETS['demo'].steps}" in steps  # presets with equal defaults group
    assert f"svd* {PRESETS['svd-xt'].steps}" in steps
    assert f"demo/demo-context {PRESETS['demo'].width}x{PRESETS['demo'].height}" in generated
    assert runner.invoke(app, ["-h"]).exit_code == 0
