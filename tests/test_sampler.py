import pytest
import torch
from diffusers import EulerDiscreteScheduler

from svdlab.engine.sampler import (
    initial_noise_scale,
    karras_sigmas,
    noise_condition,
    sample_euler,
    scale_input,
    v_to_denoised,
)
from svdlab.models.tiny import SVD_SCHEDULER_CONFIG


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
