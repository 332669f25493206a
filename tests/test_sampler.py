from typing import get_args

import pytest
import torch
from diffusers import EulerDiscreteScheduler

from svdlab.engine.sampler import (
    SAMPLERS,
    SCHEDULES,
    STOCHASTIC_SAMPLERS,
    exponential_sigmas,
    initial_noise_scale,
    karras_sigmas,
    noise_condition,
    sample_euler,
    scale_input,
    v_to_denoised,
)
from svdlab.models.tiny import SVD_SCHEDULER_CONFIG
from svdlab.params import SamplerName, ScheduleName

# A toy data set whose denoiser and probability-flow ODE are known exactly: every element is N(MEAN, STD^2).
MEAN, STD, SIGMA_MAX = 0.3, 0.5, 700.0
FIRST_ORDER = {"euler", "euler_ancestral"}


def gaussian_denoiser(x, sigma):
    """The exact denoiser E[x0 | x] of the toy data at noise level sigma."""
    return MEAN + STD**2 / (STD**2 + sigma**2) * (x - MEAN)


def toy_error(sampler: str, schedule: str, steps: int) -> float:
    """How far a sampler's result lies from the exact answer on the toy data, in float64.

    Deterministic samplers: the largest distance to the ODE's exact end point from the same noise.
    Stochastic ones (whose paths differ from the ODE's): how far the samples' mean and std are from the
    data's."""
    sigmas = SCHEDULES[schedule](steps, 0.002, SIGMA_MAX).double()
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(200_000, generator=generator, dtype=torch.float64) * (STD**2 + SIGMA_MAX**2) ** 0.5
    if sampler in STOCHASTIC_SAMPLERS:
        draw = lambda x: torch.randn(x.shape, generator=generator, dtype=x.dtype)  # noqa: E731
        out = SAMPLERS[sampler](gaussian_denoiser, start + MEAN, sigmas, noise=draw)
        return abs(out.mean().item() - MEAN) + abs(out.std().item() - STD)
    exact = MEAN + STD / (STD**2 + SIGMA_MAX**2) ** 0.5 * start
    return (SAMPLERS[sampler](gaussian_denoiser, start + MEAN, sigmas) - exact).abs().max().item()


@pytest.mark.parametrize("steps", [1, 4, 25, 30])
def test_karras_sigmas_match_the_reference_scheduler(steps):
    scheduler = EulerDiscreteScheduler(**SVD_SCHEDULER_CONFIG)
    scheduler.set_timesteps(steps)
    sigmas = karras_sigmas(steps, 0.002, 700.0)
    assert sigmas.dtype == torch.float32
    assert torch.equal(sigmas, scheduler.sigmas)
    assert torch.allclose(noise_condition(sigmas[:-1]), scheduler.timesteps)
    assert torch.isclose(initial_noise_scale(sigmas), torch.as_tensor(scheduler.init_noise_sigma))


def test_karras_sigmas_run_from_sigma_max_to_zero():
    sigmas = karras_sigmas(10, 0.002, 700.0)
    assert sigmas[0] == pytest.approx(700.0)
    assert sigmas[-2] == pytest.approx(0.002)
    assert sigmas[-1] == 0
    assert torch.all(sigmas[:-1] > sigmas[1:])


def test_euler_reaches_the_denoised_target_of_a_perfect_denoiser():
    target = torch.randn(2, 3, 4)
    seen = []
    x = sample_euler(
        lambda x, sigma: target,
        torch.randn(2, 3, 4) * 700,
        karras_sigmas(5, 0.002, 700.0),
        callback=lambda i, x: seen.append(i),
    )
    assert torch.allclose(x, target, atol=1e-5)
    assert seen == [0, 1, 2, 3, 4]


def test_v_prediction_preconditioning_recovers_the_clean_sample():
    # v-prediction (Salimans & Ho): with alpha = 1/sqrt(s^2+1) and sigma_vp = s/sqrt(s^2+1),
    # v = alpha * noise - sigma_vp * x0 for x = x0 + s * noise; the denoiser must return x0.
    sigma = torch.tensor(3.0)
    x0, noise = torch.randn(5), torch.randn(5)
    x = x0 + sigma * noise
    alpha, sigma_vp = 1 / (sigma**2 + 1) ** 0.5, sigma / (sigma**2 + 1) ** 0.5
    v = alpha * noise - sigma_vp * x0
    assert torch.allclose(v_to_denoised(v, x, sigma), x0, atol=1e-5)
    assert torch.allclose(scale_input(x, sigma), alpha * x)


def test_every_sampler_and_schedule_the_params_accept_exists():
    assert set(get_args(SamplerName)) == set(SAMPLERS)
    assert set(get_args(ScheduleName)) == set(SCHEDULES)


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_each_sampler_converges_to_the_exact_solution_as_steps_grow(sampler, schedule):
    errors = [toy_error(sampler, schedule, steps) for steps in (16, 32, 64)]
    assert errors[0] > errors[1] > errors[2], errors
    # the order shows in how fast the error falls when the steps double: about 2x first, 4x second order
    assert errors[1] / errors[2] > (1.6 if sampler in FIRST_ORDER else 3.0), errors


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_heun_evaluates_twice_per_step_but_the_last_and_the_others_once(name):
    calls = []

    def denoise(x, sigma):
        calls.append(float(sigma))
        return x * 0

    SAMPLERS[name](denoise, torch.ones(3), karras_sigmas(6, 0.002, 700.0))
    assert len(calls) == (11 if name == "heun" else 6)
    assert calls[0] == pytest.approx(700.0) and min(calls) > 0


def test_exponential_sigmas_are_evenly_spaced_in_log_sigma():
    sigmas = exponential_sigmas(5, 0.002, 700.0)
    assert sigmas[0] == pytest.approx(700.0) and sigmas[-2] == pytest.approx(0.002) and sigmas[-1] == 0
    ratios = sigmas[1:-1] / sigmas[:-2]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios))
