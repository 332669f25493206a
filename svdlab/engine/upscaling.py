"""A learned video upscaler's conditioning and sampling. The UNet denoises the residual between the
high-resolution frames and the low-resolution ones resized (bicubic), times `residual_scale`; beside it,
frame by frame, it is given the low-resolution video, noise-augmented at its own size and resized (bicubic)
to the output size; both are folded space-to-depth into cells of `patch` x `patch` pixels. The augmentation
level is the UNet's third time id, as SVD's noise_aug_strength is; its cross-attention sees zeros (there is
no image embedding). Sampling is EDM's Euler over Karras noise levels from starting noise scaled by a
temperature (reduced-temperature sampling; 0 starts from the noise's mean, zeros, so that one step gives
the model's mean prediction and no seed changes it), one generator per window, no guidance; the frames
are the resized input plus the sampled residual."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from svdlab.engine.sampler import (
    initial_noise_scale,
    karras_sigmas,
    noise_condition,
    sample_euler,
    scale_input,
    v_to_denoised,
)


def to_cells(frames: torch.Tensor, patch: int) -> torch.Tensor:
    """Frames (..., 3, H, W) as space-to-depth cells (..., 3 * patch^2, H / patch, W / patch)."""
    lead = frames.shape[:-3]
    cells = F.pixel_unshuffle(frames.reshape(-1, *frames.shape[-3:]), patch)
    return cells.reshape(*lead, *cells.shape[-3:])


def from_cells(cells: torch.Tensor, patch: int) -> torch.Tensor:
    """Frames (..., 3, H, W) from space-to-depth cells (..., 3 * patch^2, H / patch, W / patch)."""
    lead = cells.shape[:-3]
    frames = F.pixel_shuffle(cells.reshape(-1, *cells.shape[-3:]), patch)
    return frames.reshape(*lead, *frames.shape[-3:])


def resized(clips: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Clips (B, T, 3, h, w) resized to `size` (H, W), bicubic."""
    batch, frames = clips.shape[:2]
    bigger = F.interpolate(clips.flatten(0, 1), size=tuple(size), mode="bicubic", align_corners=False)
    return bigger.view(batch, frames, 3, *size)


def residual_cells(frames: torch.Tensor, low_res: torch.Tensor, patch: int, scale: float) -> torch.Tensor:
    """The training target: high-resolution clips (B, T, 3, H, W) less their low-resolution versions resized,
    times `scale`, as cells."""
    return to_cells(frames - resized(low_res, frames.shape[-2:]), patch) * scale


def low_res_condition(
    low_res: torch.Tensor, size: tuple[int, int], strength: torch.Tensor, noise: torch.Tensor, patch: int
) -> torch.Tensor:
    """The conditioning cells (B, T, 3 * patch^2, H / patch, W / patch) of low-resolution clips
    (B, T, 3, h, w) in [-1, 1]: each clip plus its strength (B,) times `noise` (like low_res), resized to
    `size` (H, W)."""
    augmented = low_res + strength.view(-1, 1, 1, 1, 1) * noise
    return to_cells(resized(augmented, size), patch)


def upscaler_time_ids(strengths: torch.Tensor) -> torch.Tensor:
    """Time ids (B, 3) of an upscaler: only the third, the conditioning noise level, carries information."""
    ids = torch.zeros(len(strengths), 3)
    ids[:, 2] = strengths
    return ids


def empty_embeddings(unet: torch.nn.Module, batch: int) -> torch.Tensor:
    """The zeros an upscaler's cross-attention sees (B, 1, cross_attention_dim)."""
    return torch.zeros(batch, 1, unet.config.cross_attention_dim)


@torch.inference_mode()
def sample_upscaled(
    model,
    low_res: torch.Tensor,
    scale: int,
    seed: int,
    steps: int,
    strength: float,
    temperature: float = 1.0,
) -> torch.Tensor:
    """One window of frames (T, 3, h, w) in [0, 1] upscaled to (T, 3, h * scale, w * scale) in [0, 1].

    The generator seeded with `seed` draws the augmentation noise, then the starting noise, which is
    scaled by `temperature`."""
    patch, device, dtype = model.preset.patch, model.device, model.dtype
    frames, _, height, width = low_res.shape
    size = (height * scale, width * scale)
    generator = torch.Generator("cpu").manual_seed(seed)
    augmentation = torch.randn(low_res.shape, generator=generator)
    start = torch.randn(
        (1, frames, 3 * patch * patch, size[0] // patch, size[1] // patch), generator=generator
    )
    level = torch.tensor([float(strength)])
    condition = low_res_condition(low_res[None] * 2 - 1, size, level, augmentation[None], patch)
    condition = condition.to(device, dtype)
    embeddings = empty_embeddings(model.unet, 1).to(device, dtype)
    ids = upscaler_time_ids(level).to(device, dtype)
    sigma_min, sigma_max = model.sigma_range
    sigmas = karras_sigmas(steps, sigma_min, sigma_max).to(device)

    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        v = model.unet(
            torch.cat([scale_input(x, sigma).to(dtype), condition], dim=2),
            noise_condition(sigma),
            encoder_hidden_states=embeddings,
            added_time_ids=ids,
            return_dict=False,
        )[0].float()
        return v_to_denoised(v, x, sigma)

    cells = sample_euler(denoise, (start * temperature * initial_noise_scale(sigmas)).to(device), sigmas)
    residual = from_cells(cells[0].float().cpu(), patch) / model.preset.residual_scale
    base = resized(low_res[None] * 2 - 1, size)[0]
    return ((base + residual) / 2 + 0.5).clamp(0, 1)
