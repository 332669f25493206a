"""Packing jobs into shared UNet calls, and finding the batch size that is fastest per job."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

CANDIDATE_SIZES = (1, 2, 4, 8, 16)
GAIN_NEEDED = 1.03  # grow a pack only while that makes each job at least 3 % faster


def pack_key(params) -> tuple[int, int, int, int]:
    """Jobs with equal keys can share UNet calls: (frames, height, width, steps)."""
    return params.num_frames, params.height, params.width, params.steps


def uses_guidance(params) -> bool:
    """Whether any frame's guidance scale differs from 1 (so the unconditional branch is needed)."""
    return params.min_guidance != 1.0 or params.max_guidance != 1.0


def group_jobs(jobs: Sequence) -> dict[tuple, list]:
    """Jobs grouped by pack key, groups in the order their first job appears."""
    groups: dict[tuple, list] = {}
    for job in jobs:
        groups.setdefault(pack_key(job.params), []).append(job)
    return groups


def split(jobs: list, size: int) -> list[list]:
    """Consecutive packs of at most size jobs."""
    return [jobs[start : start + size] for start in range(0, len(jobs), size)]


class BatchSizer:
    """Measures the fastest jobs-per-UNet-call for a model, shape and device, and remembers it."""

    def __init__(self):
        self.best: dict[tuple, int] = {}

    def size_for(self, model, key: tuple, guided: bool, available: int) -> int:
        """The remembered or freshly measured best pack size, at most `available`."""
        if available <= 1:
            return 1
        cache_key = (id(model.unet), str(model.device), model.dtype, key, guided)
        if cache_key not in self.best:
            self.best[cache_key] = self._measure(model, key, guided, available)
        return min(self.best[cache_key], available)

    @torch.inference_mode()
    def _measure(self, model, key: tuple, guided: bool, available: int) -> int:
        frames, height, width, _ = key
        config = model.unet.config
        scale = model.vae_scale_factor
        rows_per_job = 2 if guided else 1
        best_size, best_time = 1, float("inf")
        for size in (s for s in CANDIDATE_SIZES if s <= available):
            rows = size * rows_per_job
            shape = (rows, frames, config.in_channels, height // scale, width // scale)
            inputs = {
                "sample": torch.zeros(shape, device=model.device, dtype=model.dtype),
                "timestep": torch.tensor(0.5, device=model.device),
                "encoder_hidden_states": torch.zeros(
                    rows, 1, config.cross_attention_dim, device=model.device, dtype=model.dtype
                ),
                "added_time_ids": torch.zeros(rows, 3, device=model.device, dtype=model.dtype),
            }
            try:
                if size == 1:
                    _timed(model, inputs)  # warm-up: the first call pays for allocations and kernel choice
                per_job = _timed(model, inputs) / size
            except torch.OutOfMemoryError:
                break
            if per_job * GAIN_NEEDED >= best_time:
                break
            best_size, best_time = size, per_job
        return best_size


def _timed(model, inputs: dict) -> float:
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    model.unet(**inputs, return_dict=False)
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start
