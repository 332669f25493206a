"""Video upscalers: diffusers' UNetSpatioTemporalConditionModel configured to denoise high-resolution
frames in pixel space (their residual over the resized input), folded space-to-depth (`patch` x `patch`
pixels per cell, weight-free and exact), given the noise-augmented low-resolution video frame by frame
(Video LDM's upscaler, on SVD's UNet; see svdlab.engine.upscaling).

Pixel space, not a VAE's latents: the demo's autoencoder reconstructs 128x128 sprite frames at 27.5 dB
PSNR / 0.90 SSIM, below plain bicubic upscaling (36.5 dB / 0.977), so no latent upscaler on it could beat
bicubic. A folder holds `svdlab.json` (`"kind": "upscaler"`), `unet/` and `scheduler/`; it loads through the
same names and folders as every checkpoint (`load_upscaler`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from diffusers import EulerDiscreteScheduler, UNetSpatioTemporalConditionModel

from svdlab.errors import ModelNotAvailableError
from svdlab.models.loading import (
    PRESET_FILE,
    check_weights_safe,
    default_device,
    resolve_dtype,
    weights_sha256_of,
    write_preset,
)
from svdlab.models.presets import PRESETS, SHIPPED_MODELS

UPSCALER_KIND = "upscaler"


@dataclass(frozen=True)
class UpscalerPreset:
    """An upscaler's defaults: its scale, the frames per window it was trained on, its sampling steps,
    conditioning noise level and temperature (the scale of its starting noise: 1 as trained, 0 starts
    from the noise's mean and makes the output the same for every seed), its space-to-depth patch and
    the factor its residual is scaled by."""

    name: str
    description: str
    scale: int
    num_frames: int = 8
    steps: int = 8
    noise_aug_strength: float = 0.02
    temperature: float = 1.0
    patch: int = 4
    residual_scale: float = 20.0
    shipped: bool = False
    kind: str = UPSCALER_KIND


UPSCALER_PRESETS: dict[str, UpscalerPreset] = {
    "demo-upscaler": UpscalerPreset(
        name="demo-upscaler",
        description="svdlab's demo video upscaler: demo's 64x64 sprite videos to 128x128 (offline)",
        scale=2,
        steps=1,
        noise_aug_strength=0.0,
        temperature=0.0,
        shipped=True,
    ),
}


@dataclass
class UpscalerModel:
    """The UNet and noise schedule of one video upscaler, with its defaults and identity."""

    unet: torch.nn.Module
    scheduler: object
    preset: UpscalerPreset
    source: str
    location: str
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    _weights_sha256: str | None = None

    @property
    def name(self) -> str:
        """The name the user asked for (preset or folder)."""
        return self.preset.name if self.source == "shipped" else self.location

    @property
    def size_multiple(self) -> int:
        """Output width and height must be multiples of this (space-to-depth and UNet downsampling)."""
        return self.preset.patch * 2 ** (len(self.unet.config.block_out_channels) - 1)

    @property
    def sigma_range(self) -> tuple[float, float]:
        """(sigma_min, sigma_max) of the EDM schedule the upscaler was trained with."""
        config = self.scheduler.config
        return float(config.sigma_min), float(config.sigma_max)

    def save_pretrained(self, path: str | Path) -> Path:
        """Write the upscaler folder (safetensors) that load_upscaler reads back."""
        path = Path(path)
        self.unet.save_pretrained(path / "unet", safe_serialization=True)
        self.scheduler.save_pretrained(path / "scheduler")
        write_preset(path, replace(self.preset, name=path.name, shipped=False))
        return path

    def weights_sha256(self) -> str:
        """SHA-256 over the UNet's weight file, or over its tensors when it was not loaded from one."""
        if self._weights_sha256 is None:
            self._weights_sha256 = weights_sha256_of(self.source, self.location, {"unet": self.unet})
        return self._weights_sha256

    def weights_changed(self) -> None:
        """Forget the cached weights hash, after training changed the weights."""
        self._weights_sha256 = None

    def describe(self) -> dict:
        """Everything a manifest needs to name these exact weights."""
        return {
            "name": self.name,
            "source": self.source,
            "location": self.location,
            "weights_sha256": self.weights_sha256(),
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.device),
        }


def is_upscaler_folder(folder: Path) -> bool:
    """Whether a folder holds an upscaler (its svdlab.json says kind "upscaler")."""
    preset_file = folder / PRESET_FILE
    if not preset_file.is_file():
        return False
    return json.loads(preset_file.read_text()).get("kind") == UPSCALER_KIND


def fresh_upscaler_unet(scale: int, patch: int = 4, num_frames: int = 8, **overrides) -> torch.nn.Module:
    """A newly initialised upscaler UNet: in, the noisy frames and the low-resolution condition as
    space-to-depth cells (2 x 3 x patch^2 channels); out, the frames' cells (3 x patch^2)."""
    cells = 3 * patch * patch
    config = {
        "sample_size": 64 // patch,
        "in_channels": 2 * cells,
        "out_channels": cells,
        "down_block_types": (
            "DownBlockSpatioTemporal",
            "DownBlockSpatioTemporal",
            "CrossAttnDownBlockSpatioTemporal",
        ),
        "up_block_types": (
            "CrossAttnUpBlockSpatioTemporal",
            "UpBlockSpatioTemporal",
            "UpBlockSpatioTemporal",
        ),
        "block_out_channels": (64, 64, 64),
        "layers_per_block": 1,
        "cross_attention_dim": 32,
        "num_attention_heads": (2, 2, 2),
        "addition_time_embed_dim": 16,
        "projection_class_embeddings_input_dim": 48,
        "transformer_layers_per_block": 1,
        "num_frames": num_frames,
        **overrides,
    }
    return UNetSpatioTemporalConditionModel(**config)


def fresh_upscaler_scheduler(sigma_min: float = 0.002, sigma_max: float = 20.0) -> EulerDiscreteScheduler:
    """The EDM noise range an upscaler trains and samples over, stored as diffusers' Euler scheduler."""
    return EulerDiscreteScheduler(
        prediction_type="v_prediction",
        use_karras_sigmas=True,
        sigma_min=sigma_min,
        sigma_max=sigma_max,
        timestep_type="continuous",
    )


def load_upscaler(
    name_or_path: str | Path, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None
) -> UpscalerModel:
    """Load a video upscaler from a preset name (demo-upscaler) or a local upscaler folder."""
    device = torch.device(device) if device is not None else default_device()
    dtype = resolve_dtype(dtype, device)
    name = str(name_or_path)
    preset = UPSCALER_PRESETS.get(name)
    folder = SHIPPED_MODELS / name if preset is not None else Path(name).expanduser()
    if preset is not None and not (folder / PRESET_FILE).is_file():
        raise ModelNotAvailableError(
            f"the {name} model's weights are missing from {folder}: train them with "
            f"`bash examples/training/retrain-{name}.sh` in svdlab's repository, or reinstall svdlab from it"
        )
    if name in PRESETS:
        raise ModelNotAvailableError(
            f"{name} is an image-to-video model, not an upscaler: use --model "
            f'{", ".join(UPSCALER_PRESETS)} or a folder trained with task = "upscale"'
        )
    if not folder.is_dir():
        raise ModelNotAvailableError(
            f"unknown upscaler {name!r}: choose {', '.join(UPSCALER_PRESETS)} or a folder that "
            '`svdlab train` wrote with task = "upscale"'
        )
    if not is_upscaler_folder(folder):
        raise ModelNotAvailableError(
            f'{folder} is not an upscaler (its {PRESET_FILE} does not say "kind": "upscaler"): use '
            f'--model {", ".join(UPSCALER_PRESETS)} or a folder trained with task = "upscale"'
        )
    check_weights_safe(folder, allow_pickle=False)
    saved = json.loads((folder / PRESET_FILE).read_text())
    try:
        unet = UNetSpatioTemporalConditionModel.from_pretrained(folder / "unet", use_safetensors=True)
        scheduler = EulerDiscreteScheduler.from_pretrained(folder / "scheduler")
    except (OSError, ValueError) as error:
        raise ModelNotAvailableError(f"cannot load {folder}: {str(error).splitlines()[0]}") from error
    preset = preset or UpscalerPreset(**saved)
    model = UpscalerModel(
        unet=unet.eval().to(device, dtype),
        scheduler=scheduler,
        preset=preset,
        source="shipped" if name in UPSCALER_PRESETS else "local",
        location=str(folder),
        device=device,
        dtype=dtype,
    )
    return model
