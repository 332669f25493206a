"""LoRA on the tiny-random UNet: targets, save/load, scale, merge, generate --lora and lora merge."""

import hashlib
import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from typer.testing import CliRunner

import svdlab
from svdlab.cli import app
from svdlab.errors import InvalidParameterError
from svdlab.models import load_model
from svdlab.training.lora import (
    LORA_TARGETS,
    add_lora,
    has_lora,
    load_lora,
    lora_layers,
    lora_metadata,
    lora_state_dict,
    merge_lora,
    read_lora,
    save_lora,
    target_modules,
)
from tests.conftest import make_image

STEPS = 3
PROJECTIONS = ("to_q", "to_k", "to_v", "to_out.0")


def fresh_model():
    """A tiny-random model of our own, free to modify."""
    return load_model("tiny-random", device="cpu", dtype="float32")


def frames(model, **options) -> torch.Tensor:
    """The frames of one short video of the same image and seed."""
    (video,) = svdlab.generate(make_image(0), model, steps=STEPS, **options)
    return video.frames


def one_line_error(result) -> str:
    """The CLI's only output line, checked to be an error."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


@pytest.fixture(scope="module")
def base_frames(tiny_model):
    return frames(tiny_model)


@pytest.fixture(scope="module")
def lora_file(tmp_path_factory):
    """A rank-4 LoRA on both kinds of attention with small random B, so it changes the output."""
    model = fresh_model()
    add_lora(model.unet, rank=4, alpha=8, targets="both")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _, layer in lora_layers(model.unet):
            weight = layer.lora_B["svdlab"].weight
            weight.copy_(torch.randn(weight.shape, generator=generator) * 0.05)
    return save_lora(model.unet, tmp_path_factory.mktemp("lora") / "motion.safetensors")


@pytest.fixture(scope="module")
def lora_frames(lora_file):
    model = fresh_model()
    load_lora(model.unet, lora_file)
    return frames(model)


@pytest.fixture
def runner():
    return CliRunner()


def projections(unet, blocks: str) -> set[str]:
    """The q, k, v, out layers of both attentions in every block of `blocks` in each transformer."""
    return {
        f"{owner}.{blocks}.{index}.{attention}.{projection}"
        for owner, module in unet.named_modules()
        if hasattr(module, "temporal_transformer_blocks")
        for index in range(len(getattr(module, blocks)))
        for attention in ("attn1", "attn2")
        for projection in PROJECTIONS
    }


def test_targets_select_the_spatial_and_temporal_attention_projections(tiny_model):
    spatial, temporal, both = (set(target_modules(tiny_model.unet, name)) for name in LORA_TARGETS)
    assert spatial == projections(tiny_model.unet, "transformer_blocks") and spatial
    assert temporal == projections(tiny_model.unet, "temporal_transformer_blocks") and temporal
    assert not spatial & temporal and spatial | temporal == both
    with pytest.raises(InvalidParameterError, match="targets='all' is not allowed"):
        target_modules(tiny_model.unet, "all")


def test_a_fresh_lora_changes_nothing_and_is_all_that_trains(base_frames):
    model = fresh_model()
    add_lora(model.unet, rank=2, targets="temporal")
    trainable = [name for name, parameter in model.unet.named_parameters() if parameter.requires_grad]
    assert trainable and all(".lora_A." in name or ".lora_B." in name for name in trainable)
    wrapped = {name for name, _ in lora_layers(model.unet)}
    assert wrapped == set(target_modules(fresh_model().unet, "temporal"))
    assert lora_metadata(model.unet)["targets"] == "temporal"
    assert torch.equal(frames(model), base_frames)
    with pytest.raises(InvalidParameterError, match="already has a LoRA"):
        add_lora(model.unet)
    with pytest.raises(InvalidParameterError, match="rank=0 is not allowed"):
        add_lora(fresh_model().unet, rank=0)


def test_save_and_load_round_trip_tensors_and_header(lora_file, tmp_path):
    tensors, header = read_lora(lora_file)
    assert header == {"format": "svdlab-lora", "version": "1", "rank": "4", "alpha": "8.0", "targets": "both"}
    assert len(tensors) == 2 * len(target_modules(fresh_model().unet, "both"))
    assert all(key.endswith((".lora_A.weight", ".lora_B.weight")) for key in tensors)
    model = fresh_model()
    assert load_lora(model.unet, lora_file) == header
    loaded = lora_state_dict(model.unet)
    assert loaded.keys() == tensors.keys() and all(torch.equal(loaded[k], tensors[k]) for k in tensors)
    again = save_lora(model.unet, tmp_path / "again.safetensors", metadata={"base_model": "tiny-random"})
    assert read_lora(again)[1] == {**header, "base_model": "tiny-random"}
    with pytest.raises(InvalidParameterError, match="may not set rank"):
        save_lora(model.unet, tmp_path / "bad.safetensors", metadata={"rank": "2"})


def test_a_lora_changes_the_frames_and_scale_zero_gives_the_base_model(base_frames, lora_file, lora_frames):
    assert (lora_frames - base_frames).abs().max() > 1e-3
    model = fresh_model()
    assert torch.equal(frames(model, lora=lora_file), lora_frames)
    assert torch.equal(frames(model, lora=lora_file, lora_scale=0.0), base_frames)
    half = frames(model, lora=lora_file, lora_scale=0.5)
    assert not torch.allclose(half, base_frames, atol=1e-4)
    assert not torch.allclose(half, lora_frames, atol=1e-4)
    assert not has_lora(model.unet) and all(p.requires_grad for p in model.unet.parameters())
    assert torch.equal(frames(model), base_frames)  # the passed model is left as it was


def test_merged_frames_equal_unmerged_and_the_merged_folder_loads_in_diffusers(
    tiny_model, base_frames, lora_file, tmp_path
):
    model = fresh_model()
    load_lora(model.unet, lora_file, scale=0.7)
    unmerged = frames(model)
    assert merge_lora(model.unet) is model.unet
    assert not lora_layers(model.unet) and not has_lora(model.unet)
    assert model.unet.state_dict().keys() == tiny_model.unet.state_dict().keys()
    merged = frames(model)
    assert torch.allclose(merged, unmerged, atol=1e-5) and not torch.allclose(merged, base_frames, atol=1e-3)
    folder = model.save_pretrained(tmp_path / "merged")
    with safe_open(folder / "unet" / "diffusion_pytorch_model.safetensors", "pt") as saved:
        assert set(saved.keys()) == set(tiny_model.unet.state_dict())
    reloaded = load_model(folder, device="cpu", dtype="float32")
    assert torch.allclose(frames(reloaded), unmerged, atol=1e-5)
    with pytest.raises(InvalidParameterError, match="has no LoRA"):
        merge_lora(model.unet)


def assert_refused(path, phrase) -> None:
    """Loading `path` fails with a one-line message naming the file, and leaves the model without a LoRA."""
    model = fresh_model()
    with pytest.raises(InvalidParameterError) as caught:
        load_lora(model.unet, path)
    message = str(caught.value)
    assert phrase in message and str(path) in message and "\n" not in message
    assert not has_lora(model.unet) and not lora_layers(model.unet)


@pytest.mark.parametrize(
    ("write", "phrase"),
    [
        (lambda path: None, "does not exist; pass the .safetensors file"),
        (lambda path: path.write_text("not tensors"), "is not a safetensors file"),
        (lambda path: save_file({"x": torch.zeros(2)}, path), "is not an svdlab LoRA"),
    ],
)
def test_a_file_that_is_no_lora_is_refused(tmp_path, write, phrase):
    path = tmp_path / "bad.safetensors"
    write(path)
    assert_refused(path, phrase)


def rename_one(tensors, header) -> None:
    tensors["mid_block.nowhere.lora_A.weight"] = tensors.popitem()[1]


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        (lambda tensors, header: header.update(version="9"), "version '9'"),
        (lambda tensors, header: header.update(rank="four"), "damaged header"),
        (rename_one, "name layers the UNet lacks (e.g. mid_block.nowhere.lora_A.weight)"),
        (lambda tensors, header: tensors.popitem(), "lacks 1 tensors the UNet needs"),
        (lambda tensors, header: header.update(rank="2"), "in the file but (2,"),
    ],
)
def test_a_lora_that_does_not_fit_the_model_is_refused(lora_file, tmp_path, change, phrase):
    tensors, header = read_lora(lora_file)
    change(tensors, header)
    path = tmp_path / "edited.safetensors"
    save_file(tensors, path, metadata=header)
    assert_refused(path, phrase)


def test_sequential_offload_is_refused_before_the_model_loads(lora_file):
    with pytest.raises(InvalidParameterError, match="offload 'sequential'"):
        svdlab.generate(make_image(0), "tiny-random", offload="sequential", lora=lora_file)


def test_cli_generate_with_a_lora_names_it_in_the_manifest(runner, lora_file, tmp_path):
    image, out = tmp_path / "a.png", tmp_path / "out"
    make_image(0).save(image)
    args = ["generate", str(image), "--steps", str(STEPS), "--quiet", "--out", str(out)]
    result = runner.invoke(app, [*args, "--lora", str(lora_file), "--lora-scale", "0.5"])
    assert result.exit_code == 0, result.output
    (video,) = out.glob("*.mp4")
    manifest = json.loads(video.with_suffix(".json").read_text())
    assert manifest["lora"] == {
        "file": str(lora_file.resolve()),
        "sha256": hashlib.sha256(lora_file.read_bytes()).hexdigest(),
        "scale": 0.5,
        "rank": 4,
        "alpha": 8.0,
        "targets": "both",
    }
    line = one_line_error(runner.invoke(app, [*args, "--lora", str(tmp_path / "nope.safetensors")]))
    assert "nope.safetensors does not exist" in line


def test_cli_lora_merge_writes_a_checkpoint_that_gives_the_lora_frames(
    runner, lora_file, lora_frames, tmp_path
):
    out = tmp_path / "merged"
    result = runner.invoke(app, ["lora", "merge", "tiny-random", str(lora_file), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert str(out) in result.output and (out / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    merged = load_model(out, device="cpu", dtype="float32")
    assert torch.allclose(frames(merged), lora_frames, atol=1e-5)
    again = runner.invoke(app, ["lora", "merge", "tiny-random", str(lora_file), "--out", str(out)])
    assert "already exists and is not empty" in one_line_error(again)
    other = tmp_path / "other"
    missing = runner.invoke(app, ["lora", "merge", "tiny-random", "nope.safetensors", "--out", str(other)])
    assert "does not exist" in one_line_error(missing) and not other.exists()
