"""The autoencoder stages: the VAE (encoder and temporal decoder, or the decoder alone on the frozen
encoder's latents) learns to reconstruct clips, and a model trained from scratch gets the latent scaling
factor that gives its latents unit variance."""

from __future__ import annotations

import torch

from svdlab.engine.conditioning import vae_latents


def change_error(decoded: torch.Tensor, clips: torch.Tensor) -> torch.Tensor:
    """Mean absolute error of the frame-to-frame changes of clips (B, T, 3, H, W): 0 when every frame of
    `decoded` is off from `clips` by the same image, and 0 for clips of one frame."""
    if clips.shape[1] < 2:
        return decoded.new_zeros(())
    return (decoded.diff(dim=1) - clips.diff(dim=1)).abs().mean()


class AutoencoderObjective(torch.nn.Module):
    """L1 reconstruction of clips through the VAE, plus a small KL term and, weighted by
    `temporal_weight`, the L1 error of their frame-to-frame changes (change_error), which a still clip
    decoded with a flicker pays in full (a module, so that accelerate can wrap it for several devices)."""

    def __init__(self, vae: torch.nn.Module, kl_weight: float, temporal_weight: float = 0.0):
        super().__init__()
        self.vae = vae
        self.kl_weight = kl_weight
        self.temporal_weight = temporal_weight

    def forward(self, clips: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """The loss of clips (B, T, 3, H, W) in [-1, 1], sampling the posterior with noise `eps`."""
        frames = clips.shape[1]
        posterior = self.vae.encode(clips.flatten(0, 1)).latent_dist
        latents = posterior.mean + posterior.std * eps.to(posterior.mean.device)
        decoded = self.vae.decode(latents, num_frames=frames).sample.float()
        reconstruction = (decoded - clips.flatten(0, 1)).abs().mean()
        loss = reconstruction + self.kl_weight * posterior.kl().mean()
        if self.temporal_weight:
            loss = loss + self.temporal_weight * change_error(decoded.unflatten(0, clips.shape[:2]), clips)
        return loss


def posterior_noise_shape(model, clips_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The shape of the posterior noise for clips of shape (B, T, 3, H, W)."""
    batch, frames, _, height, width = clips_shape
    scale = model.vae_scale_factor
    return (batch * frames, model.vae.config.latent_channels, height // scale, width // scale)


def latent_scaling_factor(model, pixels: torch.Tensor) -> float:
    """1 / std of the posterior-mode latents of clips (B, T, 3, H, W): the factor that whitens them."""
    latents = torch.cat([vae_latents(model, clip) for clip in pixels])
    return float(1.0 / latents.float().std())
