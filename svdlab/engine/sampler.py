"""EDM sampling for SVD: Karras sigmas, v-prediction preconditioning, and samplers as pure functions.

A sampler takes ``denoise(x, sigma) -> denoised`` (a closure that owns the model, conditioning and
guidance), the starting noise and a tensor of sigmas ending in 0, in the shape of k-diffusion.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def karras_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022) noise levels, highest first, with a final 0 (float32, steps + 1 values)."""
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    max_inv, min_inv = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    sigmas = (max_inv + ramp * (min_inv - max_inv)) ** rho
    return torch.cat([sigmas.float(), torch.zeros(1)])


def initial_noise_scale(sigmas: torch.Tensor) -> torch.Tensor:
    """The factor that turns N(0, 1) noise into the first sample: sqrt(sigma_max^2 + 1)."""
    return (sigmas.max() ** 2 + 1) ** 0.5


def scale_input(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """EDM c_in with sigma_data = 1: x / sqrt(sigma^2 + 1)."""
    return x / ((sigma**2 + 1) ** 0.5)


def noise_condition(sigma: torch.Tensor) -> torch.Tensor:
    """EDM c_noise: the UNet's timestep input, 0.25 * ln(sigma)."""
    return 0.25 * sigma.log()


def v_to_denoised(v: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The denoised sample from a v-prediction: c_out * v + c_skip * x."""
    return v * (-sigma / (sigma**2 + 1) ** 0.5) + x / (sigma**2 + 1)


def sample_euler(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    callback: Callable[[int, torch.Tensor], torch.Tensor | None] | None = None,
) -> torch.Tensor:
    """Deterministic Euler steps of the probability-flow ODE over the given sigmas.

    `callback(i, x)` sees the sample after step i and may return a replacement (as diffusers' step-end
    callbacks may).
    """
    for i in range(len(sigmas) - 1):
        sigma = sigmas[i]
        denoised = denoise(x, sigma)
        x = x + (x - denoised) / sigma * (sigmas[i + 1] - sigma)
        if callback is not None:
            replaced = callback(i, x)
            x = x if replaced is None else replaced
    return x
