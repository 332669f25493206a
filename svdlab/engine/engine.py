"""VideoEngine: runs SVD jobs in packed batches and yields each video as soon as it is finished.

For each pack of jobs with the same shape, the loop reads as the algorithm in svd-reference.md:
CLIP-embed each distinct image, noise-augment and VAE-encode each (image, seed, noise level),
draw the starting latents from each job's own generator, run the sampler with per-job time ids
and per-frame guidance, then decode each video with the temporal decoder.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import PIL.Image
import torch

from svdlab.engine.batching import BatchSizer, group_jobs, split, uses_guidance
from svdlab.engine.conditioning import (
    LRUCache,
    clip_embeddings,
    image_digest,
    image_to_tensor,
    time_ids,
    vae_latents,
)
from svdlab.engine.decode import decode_frames
from svdlab.engine.sampler import (
    initial_noise_scale,
    karras_sigmas,
    noise_condition,
    sample_euler,
    scale_input,
    v_to_denoised,
)


@dataclass
class Job:
    """One video to make: a fitted RGB image and resolved parameters; `tag` is the caller's."""

    image: PIL.Image.Image
    params: object
    tag: object = None


@dataclass
class VideoResult:
    """A finished video: frames (F, 3, H, W) float32 in [0, 1] on the CPU, and where the time went."""

    job: Job
    frames: torch.Tensor
    timings: dict = field(default_factory=dict)


@dataclass
class _Prepared:
    """A job's conditioning and starting noise."""

    embedding: torch.Tensor
    latent: torch.Tensor
    noise: torch.Tensor


class VideoEngine:
    """Samples many SVD videos, sharing UNet calls between jobs of the same shape."""

    def __init__(self, model, batch_size: int | None = None, cache_size: int = 256):
        self.model = model
        self.batch_size = batch_size
        self.sizer = BatchSizer()
        self.embeddings = LRUCache(cache_size)
        self.latents = LRUCache(cache_size)
        self.counts = {"clip": 0, "vae_encode": 0, "unet_rows": 0}

    def plan(self, jobs: Iterable[Job]) -> list[list[Job]]:
        """The packs the jobs will run in, in order."""
        packs = []
        for key, group in group_jobs(list(jobs)).items():
            size = self.batch_size or self.sizer.size_for(
                self.model, key, any(uses_guidance(job.params) for job in group), len(group)
            )
            packs.extend(split(group, size))
        return packs

    def run(self, jobs: Iterable[Job], on_step: Callable[[], None] | None = None) -> Iterator[VideoResult]:
        """Generate every job's video; yields each result as soon as it is decoded."""
        for pack in self.plan(jobs):
            yield from self.run_pack(pack, on_step)

    @torch.inference_mode()
    def run_pack(self, pack: list[Job], on_step: Callable[[], None] | None = None) -> Iterator[VideoResult]:
        """Generate one pack of same-shape jobs in shared UNet calls."""
        first = pack[0].params
        sigma_min, sigma_max = self.model.sigma_range
        sigmas = karras_sigmas(first.steps, sigma_min, sigma_max)
        started = time.perf_counter()
        prepared = self._prepare(pack, sigmas)
        conditioned = time.perf_counter()
        denoise = self._denoiser(pack, prepared)
        noise = torch.cat([item.noise for item in prepared]).to(self.model.device)
        latents = sample_euler(
            denoise, noise, sigmas.to(self.model.device), callback=(lambda _: on_step()) if on_step else None
        )
        if self.model.device.type == "cuda":
            torch.cuda.synchronize()  # so that sampling_s holds the sampling, not just its launch
        sampled = time.perf_counter()
        for job, video_latents in zip(pack, latents):
            decode_start = time.perf_counter()
            frames = decode_frames(self.model, video_latents, job.params.decode_chunk_size)
            timings = {
                "conditioning_s": conditioned - started,
                "sampling_s": sampled - conditioned,
                "decode_s": time.perf_counter() - decode_start,
                "pack_size": len(pack),
            }
            yield VideoResult(job=job, frames=frames, timings=timings)

    def _prepare(self, pack: list[Job], sigmas: torch.Tensor) -> list[_Prepared]:
        """Embeddings, augmented latents and starting noise, drawn in diffusers' order per job."""
        scale = self.model.vae_scale_factor
        channels = self.model.vae.config.latent_channels
        to_embed, to_encode, keys, noises = {}, {}, [], []
        for job in pack:
            p = job.params
            digest = image_digest(job.image)
            image = image_to_tensor(job.image)
            generator = torch.Generator("cpu").manual_seed(p.seed)
            augmentation = torch.randn(image.shape, generator=generator)
            shape = (1, p.num_frames, channels, p.height // scale, p.width // scale)
            noises.append(torch.randn(shape, generator=generator) * initial_noise_scale(sigmas))
            key = (digest, p.seed, p.noise_aug_strength)
            keys.append(key)
            if self.embeddings.get(digest) is None:
                to_embed[digest] = image
            if self.latents.get(key) is None:
                to_encode[key] = image + p.noise_aug_strength * augmentation
        if to_embed:
            embeds = clip_embeddings(self.model, torch.cat(list(to_embed.values())))
            self.counts["clip"] += len(to_embed)
            for digest, embed in zip(to_embed, embeds):
                self.embeddings.put(digest, embed)
        if to_encode:
            encoded = vae_latents(self.model, torch.cat(list(to_encode.values())))
            self.counts["vae_encode"] += len(to_encode)
            for key, latent in zip(to_encode, encoded):
                self.latents.put(key, latent)
        return [
            _Prepared(self.embeddings.get(key[0]), self.latents.get(key), noise)
            for key, noise in zip(keys, noises)
        ]

    def _denoiser(self, pack: list[Job], prepared: list[_Prepared]):
        """The denoiser of a pack: per-job time ids, per-frame guidance, unconditional rows only if needed."""
        model, device, dtype = self.model, self.model.device, self.model.dtype
        frames = pack[0].params.num_frames
        guided = [i for i, job in enumerate(pack) if uses_guidance(job.params)]
        embeds = torch.stack([item.embedding for item in prepared]).to(device, dtype)
        concat = torch.stack([item.latent for item in prepared]).to(device, dtype)
        ids = torch.tensor(
            [time_ids(j.params.fps, j.params.motion_bucket_id, j.params.noise_aug_strength) for j in pack],
            dtype=dtype,
            device=device,
        )
        ramps = [
            torch.linspace(pack[i].params.min_guidance, pack[i].params.max_guidance, frames) for i in guided
        ]
        scales = torch.stack(ramps).to(device).view(-1, frames, 1, 1, 1) if guided else None
        row_embeds = torch.cat([torch.zeros_like(embeds[guided]), embeds])
        row_concat = (
            torch.cat([torch.zeros_like(concat[guided]), concat]).unsqueeze(1).expand(-1, frames, -1, -1, -1)
        )
        row_ids = torch.cat([ids[guided], ids])
        unconditional = len(guided)

        def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            scaled = scale_input(x, sigma)
            rows = torch.cat([scaled[guided], scaled]).to(dtype)
            v = model.unet(
                torch.cat([rows, row_concat], dim=2),
                noise_condition(sigma),
                encoder_hidden_states=row_embeds,
                added_time_ids=row_ids,
                return_dict=False,
            )[0].float()
            self.counts["unet_rows"] += v.shape[0]
            v_uncond, v = v[:unconditional], v[unconditional:]
            if guided:
                v[guided] = v_uncond + scales * (v[guided] - v_uncond)
            return v_to_denoised(v, x, sigma)

        return denoise
