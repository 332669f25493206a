"""Model presets: where each known SVD checkpoint lives and the defaults it was trained with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SHIPPED_MODELS = Path(__file__).parent


@dataclass(frozen=True)
class ModelPreset:
    """Defaults and origin of one known model: on the hub (repo_id), shipped inside svdlab (a folder named
    after it next to this module) or built in-process (neither). `context`: the UNet takes context frames
    (per frame: noisy latent, masked context latent, mask) instead of one image's latent on every frame.
    `upscaler`: the learned upscaler that `upscale_method = "model"` uses for this model's videos."""

    name: str
    description: str
    repo_id: str | None
    num_frames: int
    width: int
    height: int
    steps: int = 25
    min_guidance: float = 1.0
    max_guidance: float = 3.0
    fps: int = 7
    motion_bucket_id: int = 127
    noise_aug_strength: float = 0.02
    trained_spec: bool = True
    shipped: bool = False
    context: bool = False
    upscaler: str | None = None


PRESETS: dict[str, ModelPreset] = {
    "svd": ModelPreset(
        name="svd",
        description="Stable Video Diffusion img2vid, 14 frames at 1024x576",
        repo_id="stabilityai/stable-video-diffusion-img2vid",
        num_frames=14,
        width=1024,
        height=576,
    ),
    "svd-xt": ModelPreset(
        name="svd-xt",
        description="Stable Video Diffusion img2vid-xt, 25 frames at 1024x576",
        repo_id="stabilityai/stable-video-diffusion-img2vid-xt",
        num_frames=25,
        width=1024,
        height=576,
    ),
    "svd-xt-1.1": ModelPreset(
        name="svd-xt-1.1",
        description="SVD img2vid-xt 1.1, 25 frames at 1024x576, fine-tuned at 6 fps / bucket 127",
        repo_id="stabilityai/stable-video-diffusion-img2vid-xt-1-1",
        num_frames=25,
        width=1024,
        height=576,
    ),
    "demo": ModelPreset(
        name="demo",
        description="svdlab's demo SVD, trained by svdlab on synthetic videos of a camera panning over a "
        "sprite: 8 frames at 64x64 (offline; motion follows motion_bucket_id)",
        repo_id=None,
        num_frames=8,
        width=64,
        height=64,
        steps=12,
        max_guidance=1.5,  # SVD's 3 over-saturates the small model's later frames (the model card)
        fps=8,
        shipped=True,
        upscaler="demo-upscaler",
    ),
    "demo-context": ModelPreset(
        name="demo-context",
        description="svdlab's context demo model: the demo model taught to take 0, 1 or more context "
        "frames (continue, inbetween, interpolate), 9 frames at 64x64 (offline)",
        repo_id=None,
        num_frames=9,
        width=64,
        height=64,
        steps=12,
        fps=8,
        shipped=True,
        context=True,
        upscaler="demo-upscaler",
    ),
    "tiny-random": ModelPreset(
        name="tiny-random",
        description="small random-weight SVD built in-process (offline; for tests and smoke runs)",
        repo_id=None,
        num_frames=4,
        width=64,
        height=48,
        steps=10,
        trained_spec=False,
    ),
}

REPO_TO_PRESET = {p.repo_id: p for p in PRESETS.values() if p.repo_id}


def preset_for_config(num_frames: int, sample_size: int, vae_scale_factor: int) -> ModelPreset:
    """Defaults for a checkpoint that no preset names, read from its UNet config."""
    size = sample_size * vae_scale_factor
    return ModelPreset(
        name="custom",
        description="checkpoint loaded from a folder",
        repo_id=None,
        num_frames=num_frames,
        width=size,
        height=size,
        trained_spec=False,
    )
