"""Training: the objective falls on a fixed batch, resume is exact, stages train the right layers, LoRA
runs end to end, checkpoints guard their config, and the CLI trains and reports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from svdlab.api import generate
from svdlab.cli import app
from svdlab.engine.upscaling import sample_upscaled
from svdlab.errors import InvalidParameterError, ModelNotAvailableError, RunInterruptedError
from svdlab.models import load_model
from svdlab.models.upscaler import load_upscaler
from svdlab.training.config import load_train_config
from svdlab.training.dataset import ClipDataset, prepare_dataset
from svdlab.training.lora import load_lora, merge_lora
from svdlab.training.networks import is_temporal
from svdlab.training.synthetic import write_synthetic_videos
from svdlab.training.trainer import Trainer, train, trainer_for
from svdlab.training.vae import change_error

FAST = {"steps": 3, "seed": 1}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Six 4-frame 64x48 clips cut from synthetic sprite videos."""
    root = tmp_path_factory.mktemp("training")
    write_synthetic_videos(root / "videos", 3, width=64, height=48, frames=8, fps=8, seed=3)
    prepare_dataset(root / "videos", root / "data", width=64, height=48, frames=4)
    return root / "data"


def write_config(folder, dataset, stages, **settings) -> str:
    """A training config file in `folder` over `dataset` with the given stages and top-level settings."""
    lines = [f'name = "{settings.pop("name", "run")}"', f'output = "{folder / "runs"}"']
    sections = {
        key: settings.pop(key)
        for key in ("model", "lora", "validation", "objective", "context", "upscale")
        if key in settings
    }
    lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    sections.setdefault("model", {"checkpoint": "tiny-random"})
    sections.setdefault("objective", {"cond_dropout": 0.0})
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {_toml(value)}" for key, value in values.items()]
    lines += ["[data]", f'dataset = "{dataset}"']
    for stage in stages:
        lines.append("[[stages]]")
        lines += [f"{key} = {_toml(value)}" for key, value in stage.items()]
    path = folder / "train.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _toml(value) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{key} = {_toml(item)}" for key, item in value.items()) + " }"
    return json.dumps(value)


def unet_weights(run_dir, step: int) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "checkpoints" / f"step-{step:06d}" / "unet.safetensors")


@pytest.mark.parametrize("kind", ["video", "vae", "decoder"])
def test_a_fixed_batch_is_overfit(tmp_path, dataset, kind):
    stages = [{"kind": kind, "steps": 20, "batch_size": 2, "learning_rate": 2e-3}]
    path = write_config(tmp_path, dataset, stages, ema_decay=0.0)
    trainer = Trainer(load_train_config(path), tmp_path / "train.toml")
    trainer.data.indices = lambda number, size: [0, 1]
    before = np.mean([trainer.loss_on([0, 1], kind, seed) for seed in range(4)])
    trainer.run(progress=False)
    after = np.mean([trainer.loss_on([0, 1], kind, seed) for seed in range(4)])
    assert after < 0.6 * before


def test_resume_after_an_interruption_gives_the_same_weights(tmp_path, dataset):
    stages = [
        {"kind": "image", "steps": 2, "batch_size": 2, "learning_rate": 1e-3},
        {"kind": "video", "steps": 3, "batch_size": 2, "learning_rate": 1e-3, "warmup_steps": 2},
    ]
    settings = {"gradient_accumulation": 2, "checkpoint_every": 100, "ema_decay": 0.9}
    whole = tmp_path / "whole"
    whole.mkdir()
    train(write_config(whole, dataset, stages, **settings), progress=False)

    parts = tmp_path / "parts"
    parts.mkdir()
    config = write_config(parts, dataset, stages, **settings)

    def stop(step: int, loss: float) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(RunInterruptedError, match="after step 3 of 5"):
        train(config, progress=False, on_step=stop)
    assert (parts / "runs/run/checkpoints/step-000003").is_dir()
    resumed = train(config, progress=False)
    assert resumed.step == 5 and len(resumed.losses) == 2

    expected, got = unet_weights(whole / "runs/run", 5), unet_weights(parts / "runs/run", 5)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[key], got[key]) for key in expected)
    ema_expected = torch.load(whole / "runs/run/checkpoints/step-000005/ema.pt", weights_only=True)
    ema_got = torch.load(parts / "runs/run/checkpoints/step-000005/ema.pt", weights_only=True)
    assert all(torch.equal(a, b) for a, b in zip(ema_expected["shadow_params"], ema_got["shadow_params"]))


def test_image_stage_trains_spatial_layers_and_temporal_stage_only_temporal(tmp_path, dataset):
    base = load_model("tiny-random", device="cpu", dtype="float32").unet.state_dict()
    stages = [{"kind": "image", "steps": 1, "batch_size": 2, "learning_rate": 1e-2}]
    run = train(write_config(tmp_path, dataset, stages, name="image"), progress=False)
    image = unet_weights(run.run_dir, 1)
    stages = [{"kind": "temporal", "steps": 1, "batch_size": 2, "learning_rate": 1e-2}]
    run = train(write_config(tmp_path, dataset, stages, name="temporal"), progress=False)
    temporal = unet_weights(run.run_dir, 1)
    changed_by_image = {key for key in base if not torch.equal(base[key], image[key])}
    changed_by_temporal = {key for key in base if not torch.equal(base[key], temporal[key])}
    assert changed_by_image and all(not is_temporal(key) for key in changed_by_image)
    assert changed_by_temporal and all(is_temporal(key) for key in changed_by_temporal)


def test_decoder_stage_trains_only_the_vae_decoder_and_keeps_the_unet(tmp_path, dataset):
    video = [{"kind": "video", "steps": 2, "batch_size": 2, "learning_rate": 1e-3}]
    decoder = [{"kind": "decoder", "steps": 2, "batch_size": 2, "learning_rate": 1e-2}]
    models = {}
    for name, stages in {"video": video, "then-decoder": video + decoder}.items():
        folder = tmp_path / name
        folder.mkdir()
        output = train(write_config(folder, dataset, stages, ema_decay=0.9), progress=False).output
        models[name] = load_model(output, device="cpu", dtype="float32")
    before, after = models["video"].vae.state_dict(), models["then-decoder"].vae.state_dict()
    changed = {key for key in before if not torch.equal(before[key], after[key])}
    assert changed and all(key.startswith("decoder.") for key in changed)
    assert models["then-decoder"].vae.config.scaling_factor == models["video"].vae.config.scaling_factor
    unet_before, unet_after = models["video"].unet.state_dict(), models["then-decoder"].unet.state_dict()
    assert all(torch.equal(unet_before[key], unet_after[key]) for key in unet_before)


def test_change_error_ignores_an_error_shared_by_all_frames_and_counts_a_flicker():
    generator = torch.Generator().manual_seed(0)
    clips = torch.rand(2, 4, 3, 8, 8, generator=generator) * 2 - 1
    steady = clips + torch.rand(2, 1, 3, 8, 8, generator=generator) * 0.2  # the same error in every frame
    flicker = clips + torch.tensor([0.0, 0.1, -0.1, 0.1]).view(1, 4, 1, 1, 1)
    assert float(change_error(steady, clips)) == pytest.approx(0.0, abs=1e-6)
    assert float(change_error(flicker, clips)) == pytest.approx((0.1 + 0.2 + 0.2) / 3, rel=1e-5)
    assert float(change_error(clips[:, :1] + 1, clips[:, :1])) == 0.0


def test_temporal_weight_adds_the_change_error_to_a_decoder_stage(tmp_path, dataset):
    losses = {}
    for weight in (0.0, 4.0):
        folder = tmp_path / str(weight)
        folder.mkdir()
        stage = {"kind": "decoder", "steps": 1, "batch_size": 2, "temporal_weight": weight}
        losses[weight] = train(write_config(folder, dataset, [stage]), progress=False).losses[0]
    assert losses[4.0] > losses[0.0] * 1.05
    video = {"kind": "video", "steps": 1, "temporal_weight": 1.0}
    with pytest.raises(InvalidParameterError, match="temporal_weight"):
        load_train_config(write_config(tmp_path, dataset, [video]))


def test_gradient_checkpointing_and_accumulation_keep_the_loss(tmp_path, dataset):
    stages = [{"kind": "video", "steps": 1, "batch_size": 2}]
    losses = []
    for index, settings in enumerate([{}, {"gradient_checkpointing": True}]):
        folder = tmp_path / str(index)
        folder.mkdir()
        losses.append(train(write_config(folder, dataset, stages, **settings), progress=False).losses[0])
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_from_scratch_with_vae_stage_writes_a_loadable_model_and_validation_reports(tmp_path, dataset):
    stages = [
        {"kind": "vae", "steps": 2, "batch_size": 2, "learning_rate": 1e-3},
        {"kind": "image", "steps": 1, "batch_size": 2},
        {"kind": "video", "steps": 1, "batch_size": 2},
    ]
    validation = {"every": 2, "count": 1, "grid": {"motion_bucket_id": [20, 200]}, "fixed": FAST}
    config = write_config(
        tmp_path,
        dataset,
        stages,
        model={"architecture": "tiny-random"},
        validation=validation,
        name="scratch",
        log_every=1,
    )
    result = train(config, progress=False)
    assert result.output == tmp_path / "runs/scratch/model"
    assert [report.parent.parent.name for report in result.reports] == [
        "scratch-step000002",
        "scratch-step000004",
    ]
    assert all(report.is_file() for report in result.reports)
    identities = [
        json.loads(next((report.parent.parent).glob("*.json")).read_text())["model"]
        for report in result.reports
    ]
    assert all(identity["source"] == "training" for identity in identities)
    assert identities[0]["weights_sha256"] != identities[1]["weights_sha256"]

    trained = load_model(result.output, device="cpu", dtype="float32")
    assert trained.preset.num_frames == 4 and (trained.preset.width, trained.preset.height) == (64, 48)
    scratch = load_model("tiny-random", device="cpu", dtype="float32")
    assert trained.vae.config.scaling_factor != pytest.approx(scratch.vae.config.scaling_factor)
    assert not torch.equal(trained.unet.conv_in.weight, scratch.unet.conv_in.weight)
    video = generate(str(result.run_dir / "validation-images" / "clip-000000.png"), trained, **FAST)[0]
    assert video.frames.shape[:2] == (4, 3) and torch.isfinite(torch.as_tensor(video.frames)).all()

    log = [json.loads(line) for line in (result.run_dir / "log.jsonl").read_text().splitlines()]
    assert [entry["stage"] for entry in log if "loss" in entry] == ["vae", "vae", "image", "video"]


def test_a_checkpoint_with_unet_overrides_trains_a_fresh_unet_on_its_autoencoder(tmp_path, dataset):
    unet = {"block_out_channels": [32, 32], "num_attention_heads": [2, 2]}
    stages = [{"kind": "video", "steps": 1, "batch_size": 2}]
    model = {"checkpoint": "tiny-random", "unet": unet}
    result = train(write_config(tmp_path, dataset, stages, model=model), progress=False)
    trained = load_model(result.output, device="cpu", dtype="float32")
    start = load_model("tiny-random", device="cpu", dtype="float32")
    assert list(trained.unet.config.block_out_channels) == [32, 32]
    assert trained.unet.config.in_channels == start.unet.config.in_channels
    for part in ("vae", "image_encoder"):
        kept, original = getattr(trained, part).state_dict(), getattr(start, part).state_dict()
        assert kept.keys() == original.keys() and all(torch.equal(kept[k], original[k]) for k in kept)
    with pytest.raises(InvalidParameterError, match="only \\[model.unet\\] may be given"):
        load_train_config(write_config(tmp_path, dataset, stages, model={**model, "vae": {"x": 1}}))


def test_a_changed_config_is_not_resumed(tmp_path, dataset):
    stages = [{"kind": "video", "steps": 1, "batch_size": 2}]
    train(write_config(tmp_path, dataset, stages), progress=False)
    changed = write_config(tmp_path, dataset, [{**stages[0], "steps": 2}], seed=7)
    with pytest.raises(InvalidParameterError, match="--fresh"):
        train(changed, progress=False)
    assert train(changed, progress=False, fresh=True).step == 2


def test_lora_training_saves_a_lora_that_generates_and_merges(tmp_path, dataset):
    stages = [{"kind": "video", "steps": 3, "batch_size": 2, "learning_rate": 5e-2}]
    config = write_config(tmp_path, dataset, stages, lora={"rank": 4, "targets": "spatial"}, ema_decay=0.0)
    result = train(config, progress=False)
    assert result.output == tmp_path / "runs/run/lora.safetensors"
    image = PIL.Image.fromarray(ClipDataset(dataset)[0].frames[0])

    base = generate(image, "tiny-random", **FAST)[0].frames
    adapted = generate(image, "tiny-random", lora=result.output, **FAST)[0].frames
    assert np.abs(adapted - base).max() > 1e-3

    model = load_model("tiny-random", device="cpu", dtype="float32")
    load_lora(model.unet, result.output)
    unmerged = generate(image, model, **FAST)[0].frames
    merge_lora(model.unet)
    merged = generate(image, model, **FAST)[0].frames
    np.testing.assert_allclose(unmerged, adapted, atol=1e-6)
    np.testing.assert_allclose(merged, unmerged, atol=1e-5)


def test_cli_trains_and_reports_bad_configs_in_one_line(tmp_path, dataset):
    stages = [{"kind": "video", "steps": 1, "batch_size": 1}]
    runner = CliRunner()
    result = runner.invoke(app, ["train", write_config(tmp_path, dataset, stages), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "trained 1 steps" in result.output and (tmp_path / "runs/run/model/svdlab.json").is_file()

    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[model]\ncheckpoint = "tiny-random"\n[data]\ndataset = "nowhere"\n')
    result = runner.invoke(app, ["train", str(bad)])
    assert result.exit_code == 2
    assert "stages" in result.output and len(result.output.strip().splitlines()) == 1


def test_a_validation_section_without_every_validates_at_the_end_and_a_finished_run_says_so(
    tmp_path, dataset
):
    stages = [{"kind": "video", "steps": 2, "batch_size": 1}]
    validation = {"count": 1, "grid": {"motion_bucket_id": [20]}, "fixed": FAST}
    config = write_config(tmp_path, dataset, stages, validation=validation, log_every=1)
    result = train(config, progress=False)
    assert [report.parent.parent.name for report in result.reports] == ["run-step000002"]
    assert result.reports[0].is_file() and not result.finished_before
    again = CliRunner().invoke(app, ["train", config])
    assert again.exit_code == 0, again.output
    assert "already finished: all 2 steps were trained" in again.output and "--fresh" in again.output
    assert "nan" not in again.output and "trained 2 steps" not in again.output
    log = (tmp_path / "runs/run/log.jsonl").read_text().splitlines()
    assert len(log) == 3  # two steps and one validation report, nothing more from the second call


def test_without_a_validation_section_there_is_no_validation(tmp_path, dataset):
    config = write_config(tmp_path, dataset, [{"kind": "video", "steps": 1, "batch_size": 1}])
    assert load_train_config(config).validation is None
    result = train(config, progress=False)
    assert result.reports == [] and not (tmp_path / "runs/run/validation").exists()


def test_the_example_lora_config_is_valid_and_fine_tunes_the_demo():
    config = load_train_config("examples/training/lora-sprites.toml")
    assert config.model.checkpoint == "demo" and config.lora is not None
    assert [stage.kind for stage in config.stages] == ["video"] and config.validation.every == 0
    header = Path("examples/training/lora-sprites.toml").read_text()
    assert "--out sprites-64" in header and config.data.dataset == "../../sprites-64"


def test_the_example_config_is_valid():
    config = load_train_config("examples/training/tiny-sprites.toml")
    assert [stage.kind for stage in config.stages] == ["vae", "image", "video"]
    assert config.model.architecture == "tiny-random"


def test_sigterm_stops_after_the_step_in_flight_and_the_run_resumes(tmp_path, dataset):
    stages = [{"kind": "video", "steps": 12, "batch_size": 1}]
    config = write_config(tmp_path, dataset, stages, log_every=1, checkpoint_every=1000)
    log = tmp_path / "runs/run/log.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "svdlab", "train", config, "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not (log.is_file() and len(log.read_text().splitlines()) >= 2) and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2
    message = stderr.decode().strip()
    assert len(message.splitlines()) == 1 and "run the same command again to resume" in message
    logged = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    (checkpoint,) = (tmp_path / "runs/run/checkpoints").glob("step-*")
    assert int(checkpoint.name.removeprefix("step-")) == logged[-1] < 12
    assert train(config, progress=False).step == 12


def test_two_processes_train_every_stage_kind_data_parallel_on_the_cpu(tmp_path, dataset):
    kinds = ("vae", "decoder", "image", "video", "temporal")
    stages = [{"kind": kind, "steps": 2, "batch_size": 1, "frames": 2} for kind in kinds]  # 2: DDP checks
    # on a stage's second step that the first gave every trained parameter a gradient
    config = write_config(tmp_path, dataset, stages, log_every=1, gradient_accumulation=2)
    environment = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "svdlab"]
    done = subprocess.run(
        [*command, "train", config, "--quiet"], env=environment, capture_output=True, timeout=300
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout.decode().count("trained 10 steps") == 1
    logged = [json.loads(line) for line in (tmp_path / "runs/run/log.jsonl").read_text().splitlines()]
    assert [(entry["step"], entry["stage"]) for entry in logged] == [
        (step, kinds[(step - 1) // 2]) for step in range(1, 11)
    ]
    trained = load_model(tmp_path / "runs/run/model", device="cpu", dtype="float32")
    base = load_model("tiny-random", device="cpu", dtype="float32")
    assert not torch.equal(trained.unet.conv_in.weight, base.unet.conv_in.weight)
    assert not torch.equal(trained.vae.encoder.conv_in.weight, base.vae.encoder.conv_in.weight)
    assert not torch.equal(trained.vae.decoder.conv_out.weight, base.vae.decoder.conv_out.weight)


class RecordingUNet(torch.nn.Module):
    """Stands in for the UNet: records its inputs and predicts v = 0."""

    def forward(self, sample, timestep, encoder_hidden_states, added_time_ids, return_dict):
        self.seen = (sample, encoder_hidden_states, added_time_ids)
        return (torch.zeros(*sample.shape[:2], 4, *sample.shape[3:]),)


@pytest.mark.parametrize("dropout", [0.0, 1.0])
def test_the_conditioning_reaches_the_unet_or_is_dropped_whole(tmp_path, dataset, dropout):
    stages = [{"kind": "video", "steps": 1, "batch_size": 2}]
    path = write_config(tmp_path, dataset, stages, objective={"cond_dropout": dropout})
    trainer = Trainer(load_train_config(path), tmp_path / "train.toml")
    trainer.model.unet = RecordingUNet()
    trainer.loss_on([0, 1])
    sample, embeddings, ids = trainer.model.unet.seen
    condition = sample[:, :, 4:]
    assert bool(condition.abs().sum() == 0) == (dropout == 1.0)
    assert bool(embeddings.abs().sum() == 0) == (dropout == 1.0)
    records = trainer.dataset.records[:2]
    assert ids[:, 0].tolist() == [record["fps"] - 1 for record in records]
    assert ids[:, 1].tolist() == [record["motion_bucket_id"] for record in records]
    assert ((ids[:, 2] > 0.005) & (ids[:, 2] < 0.5)).all()


def test_the_context_task_widens_the_input_and_gives_each_clip_its_pattern(tmp_path, dataset):
    stages = [{"kind": "video", "steps": 2, "batch_size": 2}]
    path = write_config(tmp_path, dataset, stages, task="context", context={"patterns": {"first_last": 1.0}})
    trainer = Trainer(load_train_config(path), tmp_path / "train.toml")
    base = load_model("tiny-random", device="cpu", dtype="float32").unet.conv_in.weight
    widened = trainer.model.unet.conv_in.weight
    assert widened.shape[1] == base.shape[1] + 1 and torch.equal(widened[:, :-1], base)
    assert widened[:, -1].abs().sum() == 0  # the mask channel starts at zero
    unet = trainer.model.unet
    trainer.model.unet = RecordingUNet()
    trainer.loss_on([0, 1])
    sample, embeddings, _ = trainer.model.unet.seen
    trainer.model.unet = unet
    mask = sample[:, :, -1]
    assert mask[:, :, 0, 0].tolist() == [[1.0, 0.0, 0.0, 1.0]] * 2  # first and last of 4 frames
    latents = sample[:, :, 4:8]  # the context latents: frames 1 and 2 hold their nearest given frame's
    assert torch.equal(latents[:, 1], latents[:, 0]) and torch.equal(latents[:, 2], latents[:, 3])
    assert not torch.equal(latents[:, 0], latents[:, 3]) and latents[:, 0].abs().sum() > 0
    assert embeddings.abs().sum() > 0
    result = train(path, progress=False)
    model = load_model(result.output, device="cpu", dtype="float32")
    assert model.preset.context and model.unet.config.in_channels == 9
    assert not torch.equal(
        model.unet.conv_in.weight[:, -1], torch.zeros_like(model.unet.conv_in.weight[:, -1])
    )


def test_a_context_run_validates_every_pattern_against_the_true_frames(tmp_path, dataset):
    stages = [{"kind": "video", "steps": 1, "batch_size": 2}]
    validation = {"count": 1, "fixed": {"steps": 2}}
    path = write_config(tmp_path, dataset, stages, task="context", validation=validation)
    result = train(path, progress=False)
    (summary,) = result.reports
    patterns = json.loads(summary.read_text())["patterns"]
    assert set(patterns) == {"none", "first", "first_two", "first_last", "every_2", "every_4"}
    assert "given_psnr" not in patterns["none"] and "given_psnr" in patterns["every_2"]
    assert len(list(summary.parent.glob("*.mp4"))) == 6


def test_a_lora_cannot_train_the_context_task(tmp_path, dataset):
    path = write_config(tmp_path, dataset, [{"kind": "video", "steps": 1}], task="context", lora={"rank": 2})
    with pytest.raises(InvalidParameterError, match="widens"):
        load_train_config(path)


def test_the_upscale_task_learns_resumes_exactly_and_writes_a_loadable_upscaler(tmp_path, dataset):
    stages = [{"kind": "video", "steps": 4, "batch_size": 2, "learning_rate": 2e-3}]
    settings = {
        "task": "upscale",
        "upscale": {"crop": 32, "temporal_weight": 1.0},
        "model": {"architecture": "upscaler", "unet": {"block_out_channels": [32, 32, 32]}},
        "ema_decay": 0.9,
    }
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    whole.mkdir(), parts.mkdir()
    config = write_config(whole, dataset, stages, **settings)
    trainer = trainer_for(load_train_config(config), Path(config))
    before = np.mean([trainer.loss_on([0, 1], "video", seed) for seed in range(4)])
    trainer.run(progress=False)
    after = np.mean([trainer.loss_on([0, 1], "video", seed) for seed in range(4)])
    assert after < before

    def stop(step: int, loss: float) -> None:
        if step == 2:
            raise KeyboardInterrupt

    resumable = write_config(parts, dataset, stages, **settings)
    with pytest.raises(RunInterruptedError, match="after step 2 of 4"):
        train(resumable, progress=False, on_step=stop)
    assert train(resumable, progress=False).step == 4
    expected, got = unet_weights(whole / "runs/run", 4), unet_weights(parts / "runs/run", 4)
    assert all(torch.equal(expected[key], got[key]) for key in expected)

    upscaler = load_upscaler(whole / "runs/run/model", device="cpu")
    assert upscaler.preset.scale == 2 and upscaler.source == "local"
    made = sample_upscaled(upscaler, torch.rand(4, 3, 16, 24), 2, seed=0, steps=2, strength=0.02)
    assert made.shape == (4, 3, 32, 48) and 0 <= float(made.min()) <= float(made.max()) <= 1
    with pytest.raises(ModelNotAvailableError, match="not an upscaler"):
        load_upscaler(whole / "runs")


def test_an_upscale_config_refuses_what_the_task_cannot_train(tmp_path, dataset):
    stages = [{"kind": "image", "steps": 1}]
    settings = {"task": "upscale", "model": {"architecture": "upscaler"}}
    with pytest.raises(InvalidParameterError, match="video stages only"):
        load_train_config(write_config(tmp_path, dataset, stages, **settings))
    small = {**settings, "upscale": {"crop": 96}}
    trainer_config = write_config(tmp_path, dataset, [{"kind": "video", "steps": 1}], **small)
    with pytest.raises(InvalidParameterError, match="at least its 96x96 crops"):
        train(trainer_config, progress=False)
