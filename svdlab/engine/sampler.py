"""EDM sampling for SVD: sigma schedules, v-prediction preconditioning, and samplers as pure functions.

A sampler takes ``denoise(x, sigma) -> denoised`` (a closure that owns the model, conditioning and
guidance), the starting noise and a tensor of sigmas ending in 0, in the shape of k-diffusion.
Schedules: ``karras`` (Karras et al. 2022, rho 7; SVD's own and the default) and ``exponential``
(evenly spaced in log sigma). Samplers: ``euler`` (the default, diffusers' EulerDiscreteScheduler),
``heun`` (EDM's second-order method: two UNet evaluations per step but the last), ``dpmpp_2m``
(DPM-Solver++(2M), second order from the previous step's denoised sample, one evaluation per step) and
``euler_ancestral`` (Euler steps that remove extra noise and add fresh noise back, eta 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
StepCallback = Callable[[int, torch.Tensor], torch.Tensor | None]
NoiseSource = Callable[[torch.Tensor], torch.Tensor]


def karras_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022) noise levels, highest first, with a final 0 (float32, steps + 1 values)."""
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    max_inv, min_inv = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    sigmas = (max_inv + ramp * (min_inv - max_inv)) ** rho
    return torch.cat([sigmas.float(), torch.zeros(1)])


def exponential_sigmas(steps: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """Noise levels evenly spaced in log sigma, highest first, with a final 0 (float32, steps + 1 values)."""
    log_sigmas = torch.linspace(math.log(sigma_max), math.log(sigma_min), steps, dtype=torch.float64)
    return torch.cat([log_sigmas.exp().float(), torch.zeros(1)])


SCHEDULES = {"karras": karras_sigmas, "exponential": exponential_sigmas}


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
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """Deterministic Euler steps of the probability-flow ODE over the given sigmas.

    `callback(i, x)` sees the sample after step i and may return a replacement (as diffusers' step-end
    callbacks may).
    """
    for i in range(len(sigmas) - 1):
        sigma = sigmas[i]
        denoised = denoise(x, sigma)
        x = x + (x - denoised) / sigma * (sigmas[i + 1] - sigma)
        x = _after_step(callback, i, x)
    return x


def sample_fused(
    forward: Denoiser,
    backward: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """Time-reversal fusion's Euler steps over latents (B, F, ...): each step's denoised sample is the
    frame-wise blend of `forward`'s (weight 1 at the first frame falling linearly to 0 at the last) and
    `backward`'s on the frames in reverse order."""
    frames = x.shape[1]
    weight = torch.linspace(1.0, 0.0, frames, device=x.device).view(1, frames, *([1] * (x.dim() - 2)))
    for i in range(len(sigmas) - 1):
        sigma = sigmas[i]
        denoised = weight * forward(x, sigma) + (1 - weight) * backward(x.flip(1), sigma).flip(1)
        x = x + (x - denoised) / sigma * (sigmas[i + 1] - sigma)
        x = _after_step(callback, i, x)
    return x


def sample_heun(
    denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, callback: StepCallback | None = None
) -> torch.Tensor:
    """EDM's deterministic second-order (Heun) steps; the last step, to sigma 0, is an Euler step."""
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        slope = (x - denoise(x, sigma)) / sigma
        predicted = x + slope * (sigma_next - sigma)
        if sigma_next > 0:
            slope_next = (predicted - denoise(predicted, sigma_next)) / sigma_next
            predicted = x + (slope + slope_next) / 2 * (sigma_next - sigma)
        x = _after_step(callback, i, predicted)
    return x


def sample_dpmpp_2m(
    denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, callback: StepCallback | None = None
) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022): multistep second order in log sigma, one evaluation per step."""
    previous = None
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = denoise(x, sigma)
        if sigma_next == 0:
            x = denoised
        else:
            h = sigma.log() - sigma_next.log()
            estimate = denoised
            if previous is not None:
                ratio = (sigmas[i - 1].log() - sigma.log()) / h
                estimate = denoised + (denoised - previous) / (2 * ratio)
            x = sigma_next / sigma * x - torch.expm1(-h) * estimate
        previous = denoised
        x = _after_step(callback, i, x)
    return x


def sample_euler_ancestral(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    callback: StepCallback | None = None,
    noise: NoiseSource = torch.randn_like,
) -> torch.Tensor:
    """Ancestral Euler (eta 1): step below the next sigma, then add `noise(x)` N(0, 1) draws back up to it."""
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = denoise(x, sigma)
        sigma_up = torch.minimum(sigma_next, (sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2) ** 0.5)
        sigma_down = (sigma_next**2 - sigma_up**2) ** 0.5
        x = x + (x - denoised) / sigma * (sigma_down - sigma)
        if sigma_next > 0:
            x = x + noise(x) * sigma_up
        x = _after_step(callback, i, x)
    return x


SAMPLERS = {
    "euler": sample_euler,
    "heun": sample_heun,
    "dpmpp_2m": sample_dpmpp_2m,
    "euler_ancestral": sample_euler_ancestral,
}
STOCHASTIC_SAMPLERS = frozenset({"euler_ancestral"})


def _after_step(callback: StepCallback | None, i: int, x: torch.Tensor) -> torch.Tensor:
    """The sample after step i, or what the callback returns in its place."""
    if callback is None:
        return x
    replaced = callback(i, x)
    return x if replaced is None else replaced
