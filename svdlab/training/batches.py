"""Batches for training: which clips each micro-batch takes (a function of the step alone, so a resumed
run sees exactly the same data), their pixels, labels, and the frozen encoders' outputs, cached."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from svdlab.engine.conditioning import clip_embeddings, time_ids, vae_latents


def step_generator(seed: int, *counters: int) -> torch.Generator:
    """A CPU generator seeded from the run seed and counters (step, micro-batch, rank...)."""
    value = seed
    for counter in counters:
        value = (value * 1_000_003 + counter + 1) % (2**63 - 1)
    return torch.Generator("cpu").manual_seed(value)


def to_pixels(frames) -> torch.Tensor:
    """uint8 frames (..., H, W, 3) as float (..., 3, H, W) in [-1, 1]."""
    pixels = torch.as_tensor(frames).float().div(127.5).sub(1.0)
    return pixels.movedim(-1, -3).contiguous()


@dataclass
class Batch:
    """One micro-batch: clean scaled latents, conditioning pixels, CLIP embeddings and labels."""

    latents: torch.Tensor
    cond_pixels: torch.Tensor
    embeddings: torch.Tensor
    fps: list[int]
    motion_bucket_ids: list[int]


class TrainingData:
    """A clip dataset served as micro-batches, with VAE latents and CLIP embeddings cached while the VAE
    and image encoder are frozen (cache_latents)."""

    def __init__(self, dataset, seed: int, cache_latents: bool):
        self.dataset = dataset
        self.seed = seed
        self.cache_latents = cache_latents
        self.encoded: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self._permutations: dict[int, torch.Tensor] = {}

    def indices(self, micro_batch: int, batch_size: int) -> list[int]:
        """The clips of the n-th micro-batch of the run: epochs of seeded permutations, read in order."""
        count = len(self.dataset)
        chosen = []
        for position in range(micro_batch * batch_size, (micro_batch + 1) * batch_size):
            chosen.append(int(self._permutation(position // count)[position % count]))
        return chosen

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch not in self._permutations:
            self._permutations = {
                epoch: torch.randperm(len(self.dataset), generator=step_generator(self.seed, epoch))
            }
        return self._permutations[epoch]

    def clip_pixels(self, indices: list[int], frames: int) -> torch.Tensor:
        """The first `frames` frames of the clips as (B, T, 3, H, W) in [-1, 1]."""
        return torch.stack([to_pixels(self.dataset[i].frames[:frames]) for i in indices])

    def batch(self, model, indices: list[int], frames: int) -> Batch:
        """Latents (scaled, posterior mode), first-frame pixels and embeddings of the clips."""
        latents, firsts, embeddings = [], [], []
        for index in indices:
            latent, first, embedding = self._encoded(model, index)
            latents.append(latent[:frames])
            firsts.append(first)
            embeddings.append(embedding)
        clips = [self.dataset.records[i] for i in indices]
        return Batch(
            latents=torch.stack(latents),
            cond_pixels=torch.stack(firsts),
            embeddings=torch.stack(embeddings),
            fps=[int(clip["fps"]) for clip in clips],
            motion_bucket_ids=[int(clip["motion_bucket_id"]) for clip in clips],
        )

    def _encoded(self, model, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cached = self.encoded.get(index)
        if cached is not None:
            return cached
        pixels = to_pixels(self.dataset[index].frames)
        latents = vae_latents(model, pixels).float().cpu().clone() * model.vae.config.scaling_factor
        embedding = clip_embeddings(model, pixels[:1]).float().cpu().clone()[0]
        encoded = (latents, pixels[0], embedding)
        if self.cache_latents:
            self.encoded[index] = encoded
        return encoded

    def forget(self) -> None:
        """Drop cached latents (the VAE is about to change)."""
        self.encoded.clear()


def added_time_ids(batch: Batch, cond_strengths: torch.Tensor) -> torch.Tensor:
    """Per-sample time ids [fps - 1, motion_bucket_id, conditioning noise strength]."""
    rows = [
        time_ids(fps, bucket, float(strength))
        for fps, bucket, strength in zip(batch.fps, batch.motion_bucket_ids, cond_strengths)
    ]
    return torch.tensor(rows, dtype=torch.float32)
