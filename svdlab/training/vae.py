"""The autoencoder stages: the VAE (encoder and temporal decoder, or the decoder alone on the frozen
encoder's latents) learns to reconstruct clips, and a model trained from scratch gets the latent scaling
factor that gives its latents unit variance."""

from __future__ import annotations

import torch

from svdlab.engine.conditioning import vae_latents


class AutoencoderObjective(torch.nn.Module):
    """L1 reconstruction of clips through the VAE, plus a small KL term (a module, so that accelerate
    can wrap it for several devices)."""

    def __init__(self, vae: torch.nn.Module, kl_weight: float):
        super().__init__()
        self.vae = vae
        self.kl_weight = kl_weight

    def forward(self, clips: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """The loss of clips (B, T, 3, H, W) in [-1, 1], sampling the posterior with noise `eps`."""
        frames = clips.shape[1]
        posterior = self.vae.encode(clips.flatten(0, 1)).latent_dist
        latents = posterior.mean + posterior.std * eps.to(posterior.mean.device)
        decoded = self.vae.decode(latents, num_frames=frames).sample
        reconstruction = (decoded.float() - clips.flatten(0, 1)).abs().mean()
        return reconstruction + self.kl_weight * posterior.kl().mean()


def posterior_noise_shape(model, clips_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The shape of the posterior noise for clips of shape (B, T, 3, H, W)."""
    batch, frames, _, height, width = clips_shape
    scale = model.vae_scale_factor
    return (batch * frames, model.vae.config.latent_channels, height // scale, width // scale)


def latent_scaling_factor(model, pixels: torch.Tensor) -> float:
    """1 / std of the posterior-mode latents of clips (B, T, 3, H, W): the factor that whitens them."""
    latents = torch.cat([vae_latents(model, clip) for clip in pixels])
    return float(1.0 / latents.float().std())
