"""Batching, caching and streaming in the VideoEngine."""

import torch

from svdlab.engine import Job, VideoEngine
from svdlab.engine.batching import BatchSizer
from tests.conftest import make_image, params_for


def mixed_jobs(model):
    images = [make_image(i) for i in range(3)]
    settings = [
        {"seed": 1, "motion_bucket_id": 20, "noise_aug_strength": 0.02, "fps": 6},
        {"seed": 2, "motion_bucket_id": 300, "noise_aug_strength": 0.3, "fps": 12, "max_guidance": 1.0},
        {"seed": 1, "motion_bucket_id": 127, "noise_aug_strength": 0.1, "fps": 7, "min_guidance": 2.0},
        {"seed": 5, "motion_bucket_id": 60, "noise_aug_strength": 0.02, "fps": 25, "max_guidance": 1.0},
    ]
    return [Job(images[i % 3], params_for(model, **s), tag=i) for i, s in enumerate(settings)]


def test_a_job_gives_the_same_frames_alone_or_packed_with_others(tiny_model):
    jobs = mixed_jobs(tiny_model)
    alone = {job.tag: next(VideoEngine(tiny_model, batch_size=1).run([job])).frames for job in jobs}
    engine = VideoEngine(tiny_model, batch_size=len(jobs))
    assert [len(pack) for pack in engine.plan(jobs)] == [4]
    packed = {result.job.tag: result.frames for result in engine.run(jobs)}
    for tag, frames in alone.items():
        assert torch.allclose(frames, packed[tag], atol=1e-5), tag
    assert not torch.allclose(packed[0], packed[2], atol=1e-3)  # the jobs really differ


def test_jobs_of_different_shapes_go_to_different_packs(tiny_model):
    jobs = [
        Job(make_image(0), params_for(tiny_model)),
        Job(make_image(0, 32, 64), params_for(tiny_model, width=32, height=64)),
        Job(make_image(1), params_for(tiny_model, num_frames=3)),
        Job(make_image(2), params_for(tiny_model)),
    ]
    packs = VideoEngine(tiny_model, batch_size=8).plan(jobs)
    assert [[jobs.index(job) for job in pack] for pack in packs] == [[0, 3], [1], [2]]


def test_embeddings_once_per_image_and_latents_once_per_image_seed_and_noise(tiny_model):
    image_a, image_b = make_image(3), make_image(4)
    jobs = [
        Job(image, params_for(tiny_model, seed=seed, noise_aug_strength=noise, motion_bucket_id=bucket))
        for image in (image_a, image_b)
        for seed in (1, 2)
        for noise in (0.02, 0.1)
        for bucket in (40, 200)
    ]
    engine = VideoEngine(tiny_model, batch_size=3)
    results = list(engine.run(jobs))
    assert len(results) == 16
    assert engine.counts["clip"] == 2
    assert engine.counts["vae_encode"] == 8
    list(engine.run(jobs[:4]))  # a second run reuses the caches
    assert engine.counts["clip"] == 2 and engine.counts["vae_encode"] == 8


def test_no_unconditional_rows_where_guidance_is_one_everywhere(tiny_model):
    steps = 3
    unguided = params_for(tiny_model, min_guidance=1.0, max_guidance=1.0, steps=steps)
    guided = params_for(tiny_model, steps=steps)
    engine = VideoEngine(tiny_model, batch_size=4)
    list(engine.run([Job(make_image(0), unguided)]))
    assert engine.counts["unet_rows"] == steps
    list(engine.run([Job(make_image(0), guided)]))
    assert engine.counts["unet_rows"] == steps + 2 * steps
    list(engine.run([Job(make_image(0), guided), Job(make_image(1), unguided), Job(make_image(2), unguided)]))
    assert engine.counts["unet_rows"] == 3 * steps + 4 * steps


def test_results_stream_as_each_pack_finishes(tiny_model):
    jobs = [Job(make_image(i), params_for(tiny_model, seed=i)) for i in range(3)]
    steps_done = []
    engine = VideoEngine(tiny_model, batch_size=1)
    stream = engine.run(jobs, on_step=lambda: steps_done.append(1))
    next(stream)
    assert len(steps_done) == 3  # only the first pack has run
    assert len(list(stream)) == 2
    assert len(steps_done) == 9


def test_batch_sizer_measures_once_and_stays_within_the_jobs_available(tiny_model, monkeypatch):
    sizer = BatchSizer()
    calls = []
    original = sizer._measure
    monkeypatch.setattr(sizer, "_measure", lambda *args: calls.append(args) or original(*args))
    key = (4, 48, 64, 3)
    assert sizer.size_for(tiny_model, key, True, 1) == 1
    first = sizer.size_for(tiny_model, key, True, 5)
    assert 1 <= first <= 5
    assert sizer.size_for(tiny_model, key, True, 5) == first
    assert sizer.size_for(tiny_model, key, True, 2) == min(first, 2)
    assert len(calls) == 1
