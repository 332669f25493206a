"""SVD conditioning: CLIP image embedding, noise-augmented VAE latent, micro-conditioning time ids, and the
per-frame context channels of context-frame models."""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
import PIL.Image
import torch
from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import (
    _resize_with_antialiasing,  # the antialiased resize SVD was trained with; reused for seed compatibility
)


def image_to_tensor(image: PIL.Image.Image) -> torch.Tensor:
    """An RGB image as a (1, 3, H, W) float32 tensor in [-1, 1]."""
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)
    return (pixels.permute(2, 0, 1).unsqueeze(0) * 2.0 - 1.0).contiguous()


def image_digest(image: PIL.Image.Image) -> str:
    """A content key for an image: its size and pixels."""
    return hashlib.sha1(f"{image.size}".encode() + image.tobytes()).hexdigest()


def time_ids(fps: int, motion_bucket_id: int, noise_aug_strength: float) -> list[float]:
    """The UNet's added time ids: [fps - 1, motion_bucket_id, noise_aug_strength]."""
    return [fps - 1, motion_bucket_id, noise_aug_strength]


@torch.inference_mode()
def clip_embeddings(model, pixels: torch.Tensor) -> torch.Tensor:
    """CLIP image embeddings (B, 1, D) of frames in [-1, 1] of shape (B, 3, H, W)."""
    processor = model.feature_extractor
    size = processor.crop_size["height"], processor.crop_size["width"]
    resized = (_resize_with_antialiasing(pixels, size) + 1.0) / 2.0
    mean = torch.tensor(processor.image_mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(processor.image_std, dtype=torch.float32).view(1, 3, 1, 1)
    normalised = ((resized - mean) / std).to(model.device, model.image_encoder.dtype)
    return model.image_encoder(normalised).image_embeds.unsqueeze(1)


@torch.inference_mode()
def vae_latents(model, pixels: torch.Tensor) -> torch.Tensor:
    """Posterior-mode VAE latents (B, C, h, w), unscaled, of frames of shape (B, 3, H, W)."""
    encoder_dtype = model.vae.quant_conv.weight.dtype
    return model.vae.encode(pixels.to(model.device, encoder_dtype)).latent_dist.mode()


def context_channels(latents: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A context model's conditioning channels (..., F, C + 1, h, w) from latents (..., F, C, h, w) and a mask
    (..., F) of the given frames: each frame's context latent where it is given, the nearest given
    frame's elsewhere (the earlier one at equal distance; zeros when none is given), as SVD repeats its
    one conditioning frame over the video, then the mask itself."""
    plane = mask[..., None, None, None].to(latents.dtype)
    positions = torch.arange(mask.shape[-1], dtype=torch.float32)
    distance = (positions[:, None] - positions[None, :]).abs() + (1.0 - mask[..., None, :].float()) * 1e6
    nearest = distance.argmin(dim=-1)[..., None, None, None]  # (..., F, 1, 1, 1): the frame each one takes
    any_given = mask.any(dim=-1)[..., None, None, None, None].to(latents.dtype)
    held = latents.take_along_dim(nearest, dim=-4) * any_given
    return torch.cat([held, plane.expand(*latents.shape[:-3], 1, *latents.shape[-2:])], dim=-3)


class LRUCache:
    """A small least-recently-used mapping."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.items: OrderedDict = OrderedDict()

    def get(self, key):
        """The value for key, or None; marks it recently used."""
        if key not in self.items:
            return None
        self.items.move_to_end(key)
        return self.items[key]

    def put(self, key, value) -> None:
        """Store value under key, dropping the least recently used beyond capacity."""
        self.items[key] = value
        self.items.move_to_end(key)
        while len(self.items) > self.capacity:
            self.items.popitem(last=False)
