"""Context-frame training (the prediction and interpolation model): which frames of a clip are given,
drawn per clip from the configured patterns, and the per-frame conditioning made from them."""

from __future__ import annotations

import torch

from svdlab.engine.conditioning import context_channels, vae_latents


def pattern_frames(pattern: str, frames: int) -> list[int]:
    """The given frame indices of a pattern in a clip of `frames` frames."""
    if pattern == "none":
        return []
    if pattern == "first":
        return [0]
    if pattern == "first_two":
        return list(range(min(2, frames)))
    if pattern == "first_last":
        return sorted({0, frames - 1})
    return list(range(0, frames, int(pattern.removeprefix("every_"))))


def draw_patterns(generator: torch.Generator, weights: dict[str, float], count: int) -> list[str]:
    """`count` patterns drawn independently with the given (unnormalised) probabilities."""
    names = list(weights)
    chances = torch.tensor([float(weights[name]) for name in names])
    picks = torch.multinomial(chances, count, replacement=True, generator=generator)
    return [names[int(pick)] for pick in picks]


def pattern_masks(patterns: list[str], frames: int) -> torch.Tensor:
    """(B, F) masks, 1 where a clip's pattern gives the frame."""
    masks = torch.zeros(len(patterns), frames)
    for row, pattern in enumerate(patterns):
        masks[row, pattern_frames(pattern, frames)] = 1.0
    return masks


@torch.no_grad()
def context_condition(
    model, pixels: torch.Tensor, masks: torch.Tensor, strengths: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    """The conditioning channels (B, F, C + 1, h, w) of clips' pixels (B, F, 3, H, W) in [-1, 1]: each given
    frame noise-augmented with its clip's strength (noise (B, F, 3, H, W)) and VAE-encoded, then held over
    the frames not given (`context_channels`)."""
    given = masks.bool()
    scale = model.vae_scale_factor
    batch, frames, _, height, width = pixels.shape
    channels = model.vae.config.latent_channels
    latents = torch.zeros(batch, frames, channels, height // scale, width // scale)
    if given.any():
        levels = strengths.view(-1, 1).expand(batch, frames)[given].view(-1, 1, 1, 1)
        augmented = pixels[given] + levels * noise[given]
        latents[given] = vae_latents(model, augmented).float().cpu()
    return context_channels(latents, masks)
