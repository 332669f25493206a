"""Fast mode: other samplers, guidance intervals and deep-feature caching in the engine; their keys."""

import hashlib
import json

import pytest
import torch

import svdlab
from svdlab.engine import Job, VideoEngine
from svdlab.engine.caching import DeepFeatureCache
from svdlab.experiments.planner import job_key
from svdlab.media.manifest import manifest_path, settings_hash
from svdlab.params import LATER_DEFAULTS
from tests.conftest import make_image, params_for

STEPS = 4


def run_alone_and_packed(model, jobs):
    """Each job's final latents when run alone and when all run in one pack."""
    alone = {
        job.tag: next(VideoEngine(model, batch_size=1).run_pack([job], decode=False)).latents for job in jobs
    }
    engine = VideoEngine(model, batch_size=len(jobs))
    assert len(engine.plan(jobs)) == 1
    packed = {result.job.tag: result.latents for result in engine.run_pack(jobs, decode=False)}
    return alone, packed


def close_in_float32(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to float32 rounding in batched matmuls, relative to the latents' size."""
    return bool((a - b).abs().max() <= 1e-4 * b.abs().max())


def latents_of(model, job, counts=None):
    engine = VideoEngine(model, batch_size=1)
    latents = next(engine.run_pack([job], decode=False)).latents
    if counts is not None:
        counts.update(engine.counts)
    return latents


@pytest.mark.parametrize("sampler", ["heun", "dpmpp_2m", "euler_ancestral"])
def test_each_sampler_gives_a_job_the_same_video_alone_or_packed(tiny_model, sampler):
    jobs = [
        Job(
            make_image(i),
            params_for(tiny_model, steps=STEPS, sampler=sampler, seed=i, max_guidance=2.0 + i),
            tag=i,
        )
        for i in range(3)
    ]
    alone, packed = run_alone_and_packed(tiny_model, jobs)
    for tag, latents in alone.items():
        assert close_in_float32(latents, packed[tag]), tag
    euler = latents_of(tiny_model, Job(jobs[0].image, params_for(tiny_model, steps=STEPS, max_guidance=2.0)))
    assert not torch.allclose(alone[0], euler, atol=1e-3)  # the sampler really changed the path


def test_heun_calls_the_unet_twice_per_step_but_the_last(tiny_model):
    counts = {}
    latents_of(tiny_model, Job(make_image(0), params_for(tiny_model, steps=STEPS, sampler="heun")), counts)
    assert counts["unet_rows"] == 2 * (2 * STEPS - 1)  # guided: two rows per call


def test_jobs_with_other_samplers_or_schedules_do_not_share_calls(tiny_model):
    settings = [{}, {"sampler": "heun"}, {"schedule": "exponential"}, {"guidance_interval": "0:2"}]
    jobs = [Job(make_image(0), params_for(tiny_model, steps=STEPS, **s)) for s in settings]
    packs = VideoEngine(tiny_model, batch_size=8).plan(jobs)
    assert [[jobs.index(job) for job in pack] for pack in packs] == [[0, 3], [1], [2]]


def test_an_interval_over_every_step_is_no_truncation_bit_for_bit(tiny_model):
    image = make_image(1)
    plain = latents_of(tiny_model, Job(image, params_for(tiny_model, steps=STEPS)))
    full = latents_of(
        tiny_model, Job(image, params_for(tiny_model, steps=STEPS, guidance_interval=f"0:{STEPS}"))
    )
    assert torch.equal(plain, full)


def test_truncation_drops_the_unconditional_rows_outside_the_interval(tiny_model):
    image = make_image(2)
    counts = {}
    plain = latents_of(tiny_model, Job(image, params_for(tiny_model, steps=STEPS)), counts)
    assert counts["unet_rows"] == 2 * STEPS
    truncated = latents_of(
        tiny_model, Job(image, params_for(tiny_model, steps=STEPS, guidance_interval="1:3")), counts
    )
    assert counts["unet_rows"] == 2 * STEPS - 2  # steps 0 and 3 run the conditional row only
    assert not torch.allclose(plain, truncated, atol=1e-4)


def test_jobs_with_different_intervals_share_calls_and_keep_their_own_result(tiny_model):
    intervals = [None, "0:2", "2:4", "1:2"]
    jobs = [
        Job(make_image(i), params_for(tiny_model, steps=STEPS, seed=i, guidance_interval=interval), tag=i)
        for i, interval in enumerate(intervals)
    ]
    alone, packed = run_alone_and_packed(tiny_model, jobs)
    for tag, latents in alone.items():
        assert close_in_float32(latents, packed[tag]), tag


def unet_inputs(model, rows=2, frames=3):
    generator = torch.Generator().manual_seed(0)
    config = model.unet.config
    return {
        "sample": torch.randn(rows, frames, config.in_channels, 8, 8, generator=generator),
        "encoder_hidden_states": torch.randn(rows, 1, config.cross_attention_dim, generator=generator),
        "added_time_ids": torch.tensor([[6.0, 127.0, 0.02]] * rows),
    }


def count_deep_calls(model):
    """How often the UNet's middle block really computes (a hook on its first resnet)."""
    calls = []
    handle = model.unet.mid_block.resnets[0].register_forward_hook(lambda *args: calls.append(1))
    return calls, handle


@torch.inference_mode()
def test_cache_interval_one_is_the_plain_unet_bit_for_bit(tiny_model):
    inputs = unet_inputs(tiny_model)
    timesteps = [torch.tensor(t) for t in (1.5, 0.8, -0.3)]
    plain = [tiny_model.unet(timestep=t, **inputs, return_dict=False)[0] for t in timesteps]
    cache = DeepFeatureCache(tiny_model.unet, 1)
    with cache.attached():
        cached = []
        for t in timesteps:
            cache.next_call([0, 1])
            cached.append(tiny_model.unet(timestep=t, **inputs, return_dict=False)[0])
    assert all(torch.equal(a, b) for a, b in zip(plain, cached))
    assert "forward" not in vars(tiny_model.unet.mid_block)  # the UNet is as it was


@torch.inference_mode()
def test_cached_calls_skip_the_deep_blocks_and_pick_out_their_rows(tiny_model):
    inputs = unet_inputs(tiny_model, rows=3)
    calls, handle = count_deep_calls(tiny_model)
    cache = DeepFeatureCache(tiny_model.unet, 3)
    try:
        with cache.attached():
            cache.next_call([0, 1, 2])
            tiny_model.unet(timestep=torch.tensor(1.0), **inputs, return_dict=False)
            cache.next_call([1, 2])  # the same noise level, a subset of the rows: reused exactly
            subset = {key: value[1:] for key, value in inputs.items()}
            reused = tiny_model.unet(timestep=torch.tensor(1.0), **subset, return_dict=False)[0]
            cache.next_call([1, 2])
            tiny_model.unet(timestep=torch.tensor(0.9), **subset, return_dict=False)
            cache.next_call([1, 2])  # interval reached: full again
            tiny_model.unet(timestep=torch.tensor(0.8), **subset, return_dict=False)
    finally:
        handle.remove()
    assert len(calls) == 2 and cache.full_calls == 2
    exact = tiny_model.unet(timestep=torch.tensor(1.0), **subset, return_dict=False)[0]
    assert torch.allclose(reused, exact, atol=1e-5)


def test_engine_with_cache_interval_two_runs_fewer_deep_blocks_and_stays_close(tiny_model):
    image = make_image(3)
    steps = 8
    calls, handle = count_deep_calls(tiny_model)
    try:
        exact = latents_of(tiny_model, Job(image, params_for(tiny_model, steps=steps)))
        exact_calls = len(calls)
        cached = latents_of(tiny_model, Job(image, params_for(tiny_model, steps=steps, cache_interval=2)))
    finally:
        handle.remove()
    assert exact_calls == steps and len(calls) - exact_calls == steps // 2
    fewer_steps = latents_of(tiny_model, Job(image, params_for(tiny_model, steps=steps // 2)))
    # reusing deep features costs less fidelity than halving the steps, which saves as many deep calls
    assert (cached - exact).abs().mean() < (fewer_steps - exact).abs().mean()


FAST_SETTINGS = [
    {"sampler": "dpmpp_2m"},
    {"schedule": "exponential"},
    {"guidance_interval": "0:2"},
    {"cache_interval": 2},
]


def test_job_keys_name_each_fast_setting_and_keep_the_exact_keys_of_before(tiny_model):
    identity, pixels = {"weights_sha256": "w", "dtype": "float32"}, "p"
    exact = params_for(tiny_model, steps=STEPS)
    before = {key: value for key, value in exact.model_dump().items() if key not in LATER_DEFAULTS}
    payload = json.dumps({"model": identity, "image": pixels, "params": before}, sort_keys=True)
    assert job_key(identity, pixels, exact) == hashlib.sha256(payload.encode()).hexdigest()[:16]
    keys = {job_key(identity, pixels, params_for(tiny_model, steps=STEPS, **s)) for s in FAST_SETTINGS}
    assert len(keys) == len(FAST_SETTINGS) and job_key(identity, pixels, exact) not in keys


def test_manifests_carry_the_fast_settings_and_name_fast_videos_apart(tiny_model, tmp_path):
    common = {"steps": 2, "out": tmp_path}
    (exact,) = svdlab.generate(make_image(0), tiny_model, **common)
    (fast,) = svdlab.generate(make_image(0), tiny_model, sampler="heun", guidance_interval="0:1", **common)
    assert exact.manifest["params"]["sampler"] == "euler" and exact.manifest["params"]["cache_interval"] == 1
    assert fast.manifest["params"]["sampler"] == "heun" and fast.manifest["params"]["guidance_interval"] == (
        0,
        1,
    )
    assert fast.path != exact.path and exact.path.exists()
    written = json.loads(manifest_path(fast.path).read_text())
    assert written["params"]["guidance_interval"] == [0, 1]
    # a manifest written before the fast settings existed still names the same settings as an exact run
    old = {
        **exact.manifest,
        "params": {
            key: value for key, value in exact.manifest["params"].items() if key not in LATER_DEFAULTS
        },
    }
    assert settings_hash(old) == settings_hash(exact.manifest) != settings_hash(written)
