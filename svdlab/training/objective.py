"""The SVD training objective: EDM denoising with v-prediction, log-normal noise levels and the
(sigma^2 + 1) / sigma^2 loss weight, with the conditioning frame noise-augmented as at inference."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from svdlab.engine.sampler import noise_condition, scale_input, v_to_denoised


@dataclass
class Draws:
    """The random numbers of one micro-batch, drawn on the CPU from one generator (exactly repeatable)."""

    sigmas: torch.Tensor
    noise: torch.Tensor
    cond_strengths: torch.Tensor
    cond_noise: torch.Tensor
    keep_condition: torch.Tensor


def draw(
    generator: torch.Generator,
    latent_shape: tuple[int, ...],
    pixel_shape: tuple[int, ...],
    p_mean: float,
    p_std: float,
    cond_noise_mean: float,
    cond_noise_std: float,
    cond_dropout: float,
) -> Draws:
    """Noise levels ln(sigma) ~ N(p_mean, p_std^2), noise, conditioning strengths and the dropout mask."""
    batch = latent_shape[0]
    sigmas = (torch.randn(batch, generator=generator) * p_std + p_mean).exp()
    noise = torch.randn(latent_shape, generator=generator)
    cond_strengths = (torch.randn(batch, generator=generator) * cond_noise_std + cond_noise_mean).exp()
    cond_noise = torch.randn(pixel_shape, generator=generator)
    keep_condition = torch.rand(batch, generator=generator) >= cond_dropout
    return Draws(sigmas, noise, cond_strengths, cond_noise, keep_condition)


def loss_weight(sigmas: torch.Tensor) -> torch.Tensor:
    """EDM's lambda(sigma) with sigma_data = 1: (sigma^2 + 1) / sigma^2."""
    return (sigmas**2 + 1) / sigmas**2


def denoised_estimate(
    unet: torch.nn.Module,
    latents: torch.Tensor,
    cond_latents: torch.Tensor,
    embeddings: torch.Tensor,
    added_time_ids: torch.Tensor,
    sigmas: torch.Tensor,
    noise: torch.Tensor,
) -> torch.Tensor:
    """The UNet's denoised estimate (B, T, C, h, w) of scaled latents noised to `sigmas` with `noise`, given
    unscaled conditioning latents (B, C, h, w) for every frame, or per-frame conditioning channels
    (B, T, C', h, w), image embeddings (B, 1, D) and time ids (B, 3)."""
    frames = latents.shape[1]
    sigma = sigmas.view(-1, 1, 1, 1, 1)
    noisy = latents + noise * sigma
    condition = (
        cond_latents if cond_latents.dim() == 5 else cond_latents.unsqueeze(1).expand(-1, frames, -1, -1, -1)
    )
    v = unet(
        torch.cat([scale_input(noisy, sigma), condition], dim=2),
        noise_condition(sigmas),
        encoder_hidden_states=embeddings,
        added_time_ids=added_time_ids,
        return_dict=False,
    )[0]
    return v_to_denoised(v.float(), noisy, sigma)


def denoising_loss(denoised: torch.Tensor, latents: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """EDM's weighted squared error of denoised estimates of `latents` (B, ...) at `sigmas` (B,); one value
    per sample."""
    return loss_weight(sigmas) * (denoised - latents).pow(2).flatten(1).mean(dim=1)
