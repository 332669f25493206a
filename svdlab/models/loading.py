"""load_model: an SVD checkpoint (preset, hub id, local folder, shipped or built-in) as an SVDModel."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from diffusers import StableVideoDiffusionPipeline
from diffusers.utils import logging as diffusers_logging

from svdlab.errors import InvalidParameterError, ModelNotAvailableError
from svdlab.hashing import networks_sha256, update_from_file
from svdlab.models.advice import hub_failure_message
from svdlab.models.memory import OFFLOAD_MODES, enable_forward_chunking, remove_offload
from svdlab.models.memory import offload as memory_offload
from svdlab.models.presets import PRESETS, REPO_TO_PRESET, SHIPPED_MODELS, ModelPreset, preset_for_config
from svdlab.models.tiny import build_tiny_random

PRESET_FILE = "svdlab.json"
SAFE_WEIGHTS = (".safetensors",)
PICKLE_WEIGHTS = (".bin", ".pt", ".pth", ".ckpt")
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


@dataclass
class SVDModel:
    """The networks of one SVD checkpoint with its defaults and identity."""

    unet: torch.nn.Module
    vae: torch.nn.Module
    image_encoder: torch.nn.Module
    feature_extractor: object
    scheduler: object
    preset: ModelPreset
    source: str
    location: str
    revision: str | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    memory: dict = field(default_factory=lambda: {"offload": "none", "forward_chunking": False})
    _weights_sha256: str | None = None

    @property
    def name(self) -> str:
        """The name the user asked for (preset, hub id or folder)."""
        return self.preset.name if self.source in ("builtin", "shipped") else self.location

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent cell."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def size_multiple(self) -> int:
        """Width and height must be multiples of this (VAE and UNet downsampling)."""
        return self.vae_scale_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)

    @property
    def sigma_range(self) -> tuple[float, float]:
        """(sigma_min, sigma_max) of the EDM schedule the model was trained with."""
        config = self.scheduler.config
        return float(config.get("sigma_min") or 0.002), float(config.get("sigma_max") or 700.0)

    def pipeline(self) -> StableVideoDiffusionPipeline:
        """diffusers' reference pipeline over the same networks (for comparisons and saving)."""
        return StableVideoDiffusionPipeline(
            vae=self.vae,
            image_encoder=self.image_encoder,
            unet=self.unet,
            scheduler=self.scheduler,
            feature_extractor=self.feature_extractor,
        )

    def save_pretrained(self, path: str | Path, variant: str | None = None) -> Path:
        """Write a diffusers-format folder (safetensors) that load_model reads back."""
        path = Path(path)
        self.pipeline().save_pretrained(path, safe_serialization=True, variant=variant)
        description = f"saved from {self.name}"
        write_preset(path, replace(self.preset, name=path.name, description=description, shipped=False))
        return path

    def weights_sha256(self) -> str:
        """SHA-256 of the weights: over the folder's weight files, or over the tensors of a built-in model."""
        if self._weights_sha256 is None:
            networks = {part: getattr(self, part) for part in ("unet", "vae", "image_encoder")}
            self._weights_sha256 = weights_sha256_of(self.source, self.location, networks)
        return self._weights_sha256

    def weights_changed(self) -> None:
        """Forget the cached weights hash, after something (training, a merge) changed the weights."""
        self._weights_sha256 = None

    def describe(self) -> dict:
        """Everything a manifest needs to name these exact weights."""
        identity = {"name": self.name, "source": self.source, "location": self.location}
        identity["revision"] = self.revision
        if self.source != "hub":
            identity["weights_sha256"] = self.weights_sha256()
        identity["dtype"] = str(self.dtype).removeprefix("torch.")
        identity["device"] = str(self.device)
        return identity


def write_preset(folder: Path, preset) -> None:
    """Write a model folder's svdlab.json: the preset it loads with."""
    (folder / PRESET_FILE).write_text(json.dumps(asdict(preset), indent=2) + "\n")


def weights_sha256_of(source: str, location, networks: dict) -> str:
    """SHA-256 over the weight files of a model loaded from a folder, else over its networks' tensors."""
    return folder_weights_sha256(location) if source in ("local", "shipped") else networks_sha256(networks)


def folder_weights_sha256(folder: str | Path) -> str:
    """SHA-256 over a diffusers folder's weight files (their paths and bytes), without loading them."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).glob("*/*")):
        if path.name.endswith(SAFE_WEIGHTS + PICKLE_WEIGHTS):
            digest.update(path.relative_to(folder).as_posix().encode())
            update_from_file(digest, path)
    return digest.hexdigest()


def default_device() -> torch.device:
    """The fastest device present: CUDA, then Apple MPS, then CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """A torch dtype from a name; float16 on CUDA and float32 elsewhere by default."""
    if dtype is None:
        return torch.float16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise InvalidParameterError(f"dtype={dtype!r} is not allowed: choose one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def check_weights_safe(folder: Path, allow_pickle: bool) -> None:
    """Refuse a checkpoint whose weights exist only as pickle files, unless the user opted in."""
    for part in ("unet", "vae", "image_encoder"):
        files = [p.name for p in (folder / part).glob("*") if p.is_file()]
        has_safe = any(name.endswith(SAFE_WEIGHTS) for name in files)
        has_pickle = any(name.endswith(PICKLE_WEIGHTS) for name in files)
        if has_pickle and not has_safe and not allow_pickle:
            raise ModelNotAvailableError(
                f"{folder / part} holds only pickle weights, which can run code when loaded; "
                "convert them to safetensors, or pass --allow-pickle if you trust this checkpoint"
            )


def _preset_for_folder(folder: Path, unet_config, vae_scale_factor: int, repo_id: str | None) -> ModelPreset:
    """The defaults for a folder: its svdlab.json, its hub preset, or its UNet config."""
    if (folder / PRESET_FILE).is_file():
        return ModelPreset(**json.loads((folder / PRESET_FILE).read_text()))
    if repo_id in REPO_TO_PRESET:
        return REPO_TO_PRESET[repo_id]
    if unet_config.cross_attention_dim == 1024 and unet_config.num_frames in (14, 25):
        base = PRESETS["svd" if unet_config.num_frames == 14 else "svd-xt"]
        return replace(base, name=folder.name, description=f"{base.description} (local copy)")
    return preset_for_config(unet_config.num_frames, unet_config.sample_size, vae_scale_factor)


def _checked_inputs(folder: Path, preset: ModelPreset, in_channels: int, latent_channels: int) -> ModelPreset:
    """The preset, checked against the UNet's input channels: a one-frame model takes noisy and conditioning
    latents, a context model also a mask channel. Without an svdlab.json the channels decide."""
    if not (folder / PRESET_FILE).is_file() and in_channels == 2 * latent_channels + 1:
        return replace(preset, context=True)
    expected = 2 * latent_channels + (1 if preset.context else 0)
    if in_channels != expected:
        kind = "a context model" if preset.context else "a one-frame model"
        raise ModelNotAvailableError(
            f"{folder / PRESET_FILE} declares {kind}, whose UNet takes {expected} input channels, but its "
            f'UNet takes {in_channels}; set "context": {str(not preset.context).lower()} there'
        )
    return preset


def _refuse_upscaler(name: str, folder: Path) -> None:
    """An upscaler is not an image-to-video model: say where it is used."""
    from svdlab.models.upscaler import UPSCALER_PRESETS, is_upscaler_folder

    if name in UPSCALER_PRESETS or (folder.is_dir() and is_upscaler_folder(folder)):
        raise ModelNotAvailableError(
            f"{name} is a video upscaler, not an image-to-video model: use it with "
            f"`svdlab upscale VIDEO --method model --model {name}` or `--upscale 2 --upscale-model {name}`"
        )


def _download(repo_id: str, variant: str | None, allow_pickle: bool) -> Path:
    """The local snapshot of a hub checkpoint, downloading it if needed."""
    quiet = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # its "couldn't connect" warnings would break the one-line error
    try:
        folder = StableVideoDiffusionPipeline.download(
            repo_id, variant=variant, use_safetensors=None if allow_pickle else True
        )
    except Exception as error:  # huggingface_hub raises many kinds; all mean "not available here"
        raise ModelNotAvailableError(hub_failure_message(repo_id, error)) from error
    finally:
        diffusers_logging.set_verbosity(quiet)
    return Path(folder)


def load_model(
    name_or_path: str | Path,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    variant: str | None = None,
    allow_pickle: bool = False,
    offload: str = "none",
    forward_chunking: bool = False,
) -> SVDModel:
    """Load an SVD model from a preset name, a hub id or a local diffusers folder."""
    device = torch.device(device) if device is not None else default_device()
    dtype = resolve_dtype(dtype, device)
    if offload not in OFFLOAD_MODES:
        raise InvalidParameterError(
            f"offload={offload!r} is not allowed: choose one of {', '.join(OFFLOAD_MODES)}"
        )
    memory = {"offload": offload, "forward_chunking": forward_chunking}
    name = str(name_or_path)
    preset = PRESETS.get(name)
    if preset is not None and preset.repo_id is None and not preset.shipped:
        parts = build_tiny_random()
        model = SVDModel(**parts, preset=preset, source="builtin", location=name, revision="seed0")
        model.weights_sha256()  # before placement: offload hooks leave no readable weights behind
        return place_model(model, device, dtype, **memory)
    repo_id = preset.repo_id if preset else None
    shipped = preset is not None and preset.shipped
    folder = SHIPPED_MODELS / name if shipped else Path(name).expanduser()
    if shipped and not (folder / "model_index.json").is_file():
        raise ModelNotAvailableError(
            f"the {name} model's weights are missing from {folder}: train them with "
            f"`bash examples/training/retrain-{name}.sh` in svdlab's repository, or reinstall svdlab from it"
        )
    _refuse_upscaler(name, folder)
    if repo_id is None and not folder.is_dir():
        if not HUB_ID.match(name):
            raise ModelNotAvailableError(
                f"unknown model {name!r}: choose a preset ({', '.join(PRESETS)}), a hub id (org/name) "
                "or a local diffusers folder; `svdlab models` lists the presets"
            )
        repo_id = name
    if repo_id is not None:
        folder = _download(repo_id, variant, allow_pickle)
    if not (folder / "model_index.json").is_file():
        raise ModelNotAvailableError(
            f"{folder} is not a diffusers SVD folder (no model_index.json); "
            "save one with SVDModel.save_pretrained or download a checkpoint"
        )
    check_weights_safe(folder, allow_pickle)
    try:
        pipe = StableVideoDiffusionPipeline.from_pretrained(
            folder, dtype=dtype, variant=variant, use_safetensors=None if allow_pickle else True
        )
    except (OSError, ValueError) as error:
        raise ModelNotAvailableError(f"cannot load {folder}: {str(error).splitlines()[0]}") from error
    vae_scale = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    preset = preset if shipped else _preset_for_folder(folder, pipe.unet.config, vae_scale, repo_id)
    preset = _checked_inputs(folder, preset, pipe.unet.config.in_channels, pipe.vae.config.latent_channels)
    model = SVDModel(
        unet=pipe.unet.eval(),
        vae=pipe.vae.eval(),
        image_encoder=pipe.image_encoder.eval(),
        feature_extractor=pipe.feature_extractor,
        scheduler=pipe.scheduler,
        preset=preset,
        source="hub" if repo_id else "shipped" if shipped else "local",
        location=repo_id or str(folder),
        revision=folder.name if repo_id else None,
    )
    return place_model(model, device, dtype, **memory)


def place_model(
    model: SVDModel, device: torch.device, dtype: torch.dtype, offload: str, forward_chunking: bool
) -> SVDModel:
    """Put the networks on device and dtype (or behind offload hooks); keep a float32 VAE encoder if asked."""
    home = device if offload == "none" else torch.device("cpu")
    remove_offload(model)
    for part in (model.unet, model.vae, model.image_encoder):
        part.to(home)
        if part.dtype != dtype:
            part.to(dtype)
    if dtype == torch.float16 and model.vae.config.get("force_upcast", False):
        model.vae.encoder.to(torch.float32)
        model.vae.quant_conv.to(torch.float32)
    memory_offload(model, offload, device)
    if forward_chunking:
        enable_forward_chunking(model)
    model.device, model.dtype = device, dtype
    model.memory = {"offload": offload, "forward_chunking": forward_chunking}
    return model
