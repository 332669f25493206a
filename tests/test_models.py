"""Model presets, the tiny-random model, save/load round trips, pickle refusal, offline errors."""

import json
from types import SimpleNamespace

import pytest
import torch
from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
from huggingface_hub.errors import GatedRepoError
from transformers import CLIPVisionModelWithProjection

from svdlab.engine import Job, VideoEngine
from svdlab.errors import InvalidParameterError, ModelNotAvailableError
from svdlab.models import PRESETS, load_model
from tests.conftest import make_image, params_for


def test_presets_carry_the_reference_defaults():
    assert PRESETS["svd"].num_frames == 14
    assert PRESETS["svd-xt"].num_frames == PRESETS["svd-xt-1.1"].num_frames == 25
    for name in ("svd", "svd-xt", "svd-xt-1.1"):
        preset = PRESETS[name]
        assert (preset.width, preset.height, preset.steps, preset.fps) == (1024, 576, 25, 7)
        assert (preset.min_guidance, preset.max_guidance) == (1.0, 3.0)
        assert (preset.motion_bucket_id, preset.noise_aug_strength) == (127, 0.02)
        assert preset.repo_id.startswith("stabilityai/stable-video-diffusion-img2vid")


def test_tiny_random_is_built_from_the_real_classes_and_is_reproducible(tiny_model):
    assert isinstance(tiny_model.unet, UNetSpatioTemporalConditionModel)
    assert isinstance(tiny_model.vae, AutoencoderKLTemporalDecoder)
    assert isinstance(tiny_model.image_encoder, CLIPVisionModelWithProjection)
    assert tiny_model.size_multiple == 4
    again = load_model("tiny-random", device="cpu")
    assert again.weights_sha256() == tiny_model.weights_sha256()
    assert torch.equal(next(again.unet.parameters()), next(tiny_model.unet.parameters()))


def test_saved_model_loads_back_through_the_checkpoint_path_with_the_same_frames(tiny_model, tmp_path):
    folder = tiny_model.save_pretrained(tmp_path / "tiny-copy")
    assert (folder / "model_index.json").is_file()
    assert list((folder / "unet").glob("*.safetensors"))
    loaded = load_model(folder, device="cpu")
    assert loaded.source == "local" and loaded.location == str(folder)
    assert loaded.preset.num_frames == tiny_model.preset.num_frames
    assert (loaded.preset.width, loaded.preset.height) == (64, 48)
    image, params = make_image(5), params_for(tiny_model)
    (original,) = VideoEngine(tiny_model).run([Job(image, params)])
    (reloaded,) = VideoEngine(loaded).run([Job(image, params_for(loaded))])
    # the same weights; the frames agree to float rounding (transformers 5.24's CLIP encoder, same weights
    # in memory, embeds 2e-7 apart once loaded from a file)
    for part in ("unet", "vae", "image_encoder"):
        saved, read = getattr(tiny_model, part).state_dict(), getattr(loaded, part).state_dict()
        assert saved.keys() == read.keys() and all(torch.equal(saved[key], read[key]) for key in saved)
    assert torch.allclose(original.frames, reloaded.frames, atol=1e-5)
    described = loaded.describe()
    assert described["source"] == "local" and len(described["weights_sha256"]) == 64


def test_shipped_model_with_its_weights_missing_is_one_actionable_error(monkeypatch, tmp_path):
    monkeypatch.setattr("svdlab.models.loading.SHIPPED_MODELS", tmp_path)
    with pytest.raises(ModelNotAvailableError, match="weights are missing") as caught:
        load_model("demo", device="cpu")
    assert "\n" not in str(caught.value) and "retrain" in str(caught.value)


def test_pickle_checkpoints_are_refused_unless_allowed(tiny_model, tmp_path):
    folder = tmp_path / "pickled"
    tiny_model.pipeline().save_pretrained(folder, safe_serialization=False)
    assert list(folder.glob("unet/*.bin")) and not list(folder.glob("unet/*.safetensors"))
    with pytest.raises(ModelNotAvailableError, match="--allow-pickle"):
        load_model(folder, device="cpu")
    loaded = load_model(folder, device="cpu", allow_pickle=True)
    assert torch.equal(next(loaded.unet.parameters()), next(tiny_model.unet.parameters()))


def test_hub_model_without_network_or_cache_fails_in_one_line_naming_offline_choices(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelNotAvailableError) as caught:
        load_model("svd-xt", device="cpu")
    message = str(caught.value)
    assert "\n" not in message
    assert "stabilityai/stable-video-diffusion-img2vid-xt" in message
    assert "HF_HUB_OFFLINE is set" in message and "unreachable" not in message
    assert "--model PATH" in message and "--model demo" in message and 'model = "demo"' in message
    assert "tiny-random" not in message
    assert "gated" in message and "hf auth login" in message and "9 GB" in message


def test_a_gated_repository_says_to_accept_the_licence_and_log_in(monkeypatch):
    response = SimpleNamespace(headers={}, request=None, status_code=403)
    refusal = GatedRepoError("403 Client Error: cannot access gated repo", response=response)

    def refuse(*args, **kwargs):
        raise refusal

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("diffusers.StableVideoDiffusionPipeline.download", refuse)
    with pytest.raises(ModelNotAvailableError) as caught:
        load_model("svd", device="cpu")
    message = str(caught.value)
    assert "is gated and this machine has no access" in message and "unreachable" not in message
    assert "https://huggingface.co/stabilityai/stable-video-diffusion-img2vid," in message
    assert "hf download stabilityai/stable-video-diffusion-img2vid" in message and "--model demo" in message


def test_unknown_models_and_folders_are_named(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="unknown model 'no-such-model'.*tiny-random"):
        load_model("no-such-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotAvailableError, match="not a diffusers SVD folder"):
        load_model(tmp_path / "empty")
    with pytest.raises(InvalidParameterError, match="offload='disk'"):
        load_model("tiny-random", offload="disk")
    with pytest.raises(InvalidParameterError, match="dtype='float8'"):
        load_model("tiny-random", dtype="float8")


def test_saved_preset_file_is_json_with_the_defaults(tiny_model, tmp_path):
    folder = tiny_model.save_pretrained(tmp_path / "copy")
    saved = json.loads((folder / "svdlab.json").read_text())
    assert saved["name"] == "copy" and saved["steps"] == tiny_model.preset.steps
