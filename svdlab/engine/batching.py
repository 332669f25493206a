"""Packing jobs into shared UNet calls, and finding the batch size that is fastest per job."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch

CANDIDATE_SIZES = (1, 2, 4, 8, 16)
GAIN_NEEDED = 1.03  # grow a pack only while that makes each job at least 3 % faster


def pack_key(params) -> tuple:
    """Jobs with equal keys can share UNet calls: (frames, height, width, steps, sampler, schedule, cache
    interval, and with caching the guidance interval); the first three are the UNet input's shape.

    Jobs with different guidance intervals share calls, except when caching: there a job whose guidance
    starts late makes the cache refresh early, which would make the other jobs' frames depend on it."""
    return (
        params.num_frames,
        params.height,
        params.width,
        params.steps,
        params.sampler,
        params.schedule,
        params.cache_interval,
        params.guidance_interval if params.cache_interval > 1 else None,
    )


def uses_guidance(params) -> bool:
    """Whether any frame's guidance scale differs from 1 (so the unconditional branch is needed)."""
    return params.min_guidance != 1.0 or params.max_guidance != 1.0


def group_jobs(jobs: Sequence, kind: Callable[[object], object] = lambda job: None) -> dict[tuple, list]:
    """Jobs grouped by pack key and by `kind(job)` (jobs that sample differently), groups in the order
    their first job appears."""
    groups: dict[tuple, list] = {}
    for job in jobs:
        groups.setdefault((*pack_key(job.params), kind(job)), []).append(job)
    return groups


def split(jobs: list, size: int) -> list[list]:
    """Consecutive packs of at most size jobs."""
    return [jobs[start : start + size] for start in range(0, len(jobs), size)]


class BatchSizer:
    """Measures the fastest jobs-per-UNet-call for a model, shape and device, and remembers it."""

    def __init__(self):
        self.best: dict[tuple, int] = {}
        self.seconds: dict[tuple, float] = {}

    def size_for(self, model, key: tuple, guided: bool, available: int) -> int:
        """The remembered or freshly measured best pack size, at most `available`."""
        if available <= 1:
            return 1
        cache_key = (*_placement(model), key, guided)
        if cache_key not in self.best:
            self.best[cache_key] = self._measure(model, key, guided, available)
        return min(self.best[cache_key], available)

    def call_seconds(self, model, key: tuple, guided: bool, size: int) -> float:
        """Wall time of one UNet call for a pack of `size` jobs (measured once, then remembered)."""
        cache_key = (*_placement(model), key, guided, size)
        if cache_key not in self.seconds:
            inputs = _dummy_inputs(model, key, size * (2 if guided else 1))
            with torch.inference_mode():
                if not self.seconds:
                    _timed(model, inputs)  # warm-up: the first call pays for allocations and kernel choice
                self.seconds[cache_key] = _timed(model, inputs)
        return self.seconds[cache_key]

    def _measure(self, model, key: tuple, guided: bool, available: int) -> int:
        best_size, best_time = 1, float("inf")
        for size in (s for s in CANDIDATE_SIZES if s <= available):
            try:
                per_job = self.call_seconds(model, key, guided, size) / size
            except torch.OutOfMemoryError:
                break
            if per_job * GAIN_NEEDED >= best_time:
                break
            best_size, best_time = size, per_job
        return best_size


def _placement(model) -> tuple:
    """What a measurement depends on besides the pack: these weights, their device and dtype."""
    return id(model.unet), str(model.device), model.dtype


def _dummy_inputs(model, key: tuple, rows: int) -> dict:
    """UNet inputs of the pack's shape (values do not change the time)."""
    frames, height, width = key[:3]
    config = model.unet.config
    scale = model.vae_scale_factor
    shape = (rows, frames, config.in_channels, height // scale, width // scale)
    return {
        "sample": torch.zeros(shape, device=model.device, dtype=model.dtype),
        "timestep": torch.tensor(0.5, device=model.device),
        "encoder_hidden_states": torch.zeros(
            rows, 1, config.cross_attention_dim, device=model.device, dtype=model.dtype
        ),
        "added_time_ids": torch.zeros(rows, 3, device=model.device, dtype=model.dtype),
    }


def _timed(model, inputs: dict) -> float:
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    model.unet(**inputs, return_dict=False)
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start
