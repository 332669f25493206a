"""The SVD training objective: noise-level and augmentation distributions, the loss weight, and the loss
itself against a hand computation with a stand-in UNet."""

from __future__ import annotations

import math

import pytest
import torch

from svdlab.training.batches import Batch, added_time_ids, step_generator
from svdlab.training.objective import denoised_estimate, denoising_loss, draw, loss_weight


def test_draws_follow_the_configured_distributions():
    draws = draw(step_generator(0, 1), (20000, 1, 1, 1, 1), (20000, 3, 1, 1), 0.7, 1.6, -3.0, 0.5, 0.1)
    log_sigma, log_strength = draws.sigmas.log(), draws.cond_strengths.log()
    assert log_sigma.mean().item() == pytest.approx(0.7, abs=0.05)
    assert log_sigma.std().item() == pytest.approx(1.6, abs=0.05)
    assert log_strength.mean().item() == pytest.approx(-3.0, abs=0.02)
    assert log_strength.std().item() == pytest.approx(0.5, abs=0.02)
    assert 1 - draws.keep_condition.float().mean().item() == pytest.approx(0.1, abs=0.01)


def test_draws_repeat_exactly_for_the_same_step_and_differ_for_another():
    shape, pixels = (2, 3, 4, 8, 8), (2, 3, 16, 16)
    first = draw(step_generator(5, 10, 0), shape, pixels, 0.0, 1.0, -3.0, 0.5, 0.1)
    again = draw(step_generator(5, 10, 0), shape, pixels, 0.0, 1.0, -3.0, 0.5, 0.1)
    other = draw(step_generator(5, 11, 0), shape, pixels, 0.0, 1.0, -3.0, 0.5, 0.1)
    assert torch.equal(first.noise, again.noise) and torch.equal(first.sigmas, again.sigmas)
    assert not torch.equal(first.noise, other.noise)


def test_loss_weight_is_edm_lambda_for_unit_sigma_data():
    sigmas = torch.tensor([0.1, 1.0, 10.0])
    assert torch.allclose(loss_weight(sigmas), torch.tensor([101.0, 2.0, 1.01]))


class ZeroV(torch.nn.Module):
    """A stand-in UNet that predicts v = 0 and records what it was given."""

    def forward(self, sample, timestep, encoder_hidden_states, added_time_ids, return_dict):
        self.seen = (sample, timestep, encoder_hidden_states, added_time_ids)
        return (torch.zeros(sample.shape[0], sample.shape[1], 4, *sample.shape[3:]),)


def test_denoising_loss_matches_a_hand_computation():
    latents, noise = torch.randn(2, 3, 4, 5, 5), torch.randn(2, 3, 4, 5, 5)
    cond, embeds, ids = torch.randn(2, 4, 5, 5), torch.randn(2, 1, 8), torch.randn(2, 3)
    sigmas = torch.tensor([0.5, 3.0])
    unet = ZeroV()
    denoised = denoised_estimate(unet, latents, cond, embeds, ids, sigmas, noise)
    losses = denoising_loss(denoised, latents, sigmas)
    for i, sigma in enumerate(sigmas.tolist()):
        noisy = latents[i] + sigma * noise[i]
        denoised = noisy / (sigma**2 + 1)  # c_skip * x with v = 0
        expected = (sigma**2 + 1) / sigma**2 * (denoised - latents[i]).pow(2).mean()
        assert losses[i].item() == pytest.approx(expected.item(), rel=1e-5)
    sample, timestep, seen_embeds, seen_ids = unet.seen
    assert sample.shape == (2, 3, 8, 5, 5)
    assert torch.allclose(
        sample[:, :, :4],
        (latents + noise * sigmas.view(-1, 1, 1, 1, 1)) / (sigmas**2 + 1).sqrt().view(-1, 1, 1, 1, 1),
    )
    assert all(torch.equal(sample[i, t, 4:], cond[i]) for i in range(2) for t in range(3))
    assert torch.allclose(timestep, 0.25 * sigmas.log())
    assert seen_embeds is embeds and seen_ids is ids


def test_time_ids_carry_fps_minus_one_bucket_and_augmentation_strength():
    batch = Batch(torch.zeros(2), torch.zeros(2), torch.zeros(2), fps=[8, 4], motion_bucket_ids=[20, 240])
    ids = added_time_ids(batch, torch.tensor([0.05, math.exp(-3)]))
    assert torch.allclose(ids, torch.tensor([[7.0, 20.0, 0.05], [3.0, 240.0, math.exp(-3)]]))
