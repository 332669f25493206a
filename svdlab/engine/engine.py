"""VideoEngine: runs SVD jobs in packed batches and yields each video as soon as it is finished.

For each pack of jobs with the same shape, the loop reads as the algorithm in svd-reference.md:
CLIP-embed each distinct image, noise-augment and VAE-encode each (image, seed, noise level),
draw the starting latents from each job's own generator, run the sampler with per-job time ids
and per-frame guidance, then decode each video with the temporal decoder.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field

import PIL.Image
import torch

from svdlab.engine.batching import BatchSizer, group_jobs, split, uses_guidance
from svdlab.engine.caching import DeepFeatureCache
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
    SAMPLERS,
    SCHEDULES,
    STOCHASTIC_SAMPLERS,
    initial_noise_scale,
    noise_condition,
    scale_input,
    v_to_denoised,
)

StepEnd = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor | None]


@dataclass
class DrawnNoise:
    """N(0, 1) draws a caller made for a job: augmentation noise (3, H, W), starting latents (F, C, h, w)."""

    augmentation: torch.Tensor
    latents: torch.Tensor


@dataclass
class Job:
    """One video to make: a fitted RGB image and resolved parameters; `tag` is the caller's.

    By default the engine draws the noise from `params.seed` in diffusers' order and CLIP-embeds `image`;
    `noise` and `embed_image` (diffusers embeds its input before resizing it) replace those.
    """

    image: PIL.Image.Image
    params: object
    tag: object = None
    noise: DrawnNoise | None = None
    embed_image: PIL.Image.Image | None = None


@dataclass
class VideoResult:
    """A finished video: frames (F, 3, H, W) float32 in [0, 1] on the CPU (None when not decoded), its final
    latents (F, C, h, w) and where the time went."""

    job: Job
    frames: torch.Tensor | None
    timings: dict = field(default_factory=dict)
    latents: torch.Tensor | None = None


@dataclass
class _Prepared:
    """A job's conditioning and starting noise."""

    embedding: torch.Tensor
    latent: torch.Tensor
    noise: torch.Tensor
    generator: torch.Generator


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
    def run_pack(
        self,
        pack: list[Job],
        on_step: Callable[[], None] | None = None,
        step_end: StepEnd | None = None,
        decode: bool = True,
    ) -> Iterator[VideoResult]:
        """Generate one pack of same-shape jobs in shared UNet calls.

        `step_end(i, sigma, latents)` sees the pack's latents (B, F, C, h, w) after each step and may return
        replacements; with `decode=False` results carry only their latents.
        """
        first = pack[0].params
        sigma_min, sigma_max = self.model.sigma_range
        sigmas = SCHEDULES[first.schedule](first.steps, sigma_min, sigma_max)
        started = time.perf_counter()
        prepared = self._prepare(pack, sigmas)
        conditioned = time.perf_counter()
        cache = DeepFeatureCache(self.model.unet, first.cache_interval) if first.cache_interval > 1 else None
        denoise = self._denoiser(pack, prepared, sigmas, cache)
        noise = torch.cat([item.noise for item in prepared]).to(self.model.device)

        def after_step(i: int, x: torch.Tensor) -> torch.Tensor | None:
            if on_step is not None:
                on_step()
            return step_end(i, sigmas[i], x) if step_end is not None else None

        extra = {}
        if first.sampler in STOCHASTIC_SAMPLERS:
            extra["noise"] = _job_noise([item.generator for item in prepared])
        with cache.attached() if cache is not None else nullcontext():
            latents = SAMPLERS[first.sampler](
                denoise, noise, sigmas.to(self.model.device), callback=after_step, **extra
            )
        if self.model.device.type == "cuda":
            torch.cuda.synchronize()  # so that sampling_s holds the sampling, not just its launch
        sampled = time.perf_counter()
        for job, video_latents in zip(pack, latents):
            decode_start = time.perf_counter()
            chunk = job.params.decode_chunk_size
            frames = decode_frames(self.model, video_latents, chunk) if decode else None
            timings = {
                "conditioning_s": conditioned - started,
                "sampling_s": sampled - conditioned,
                "decode_s": time.perf_counter() - decode_start,
                "pack_size": len(pack),
            }
            yield VideoResult(job=job, frames=frames, timings=timings, latents=video_latents)

    def _prepare(self, pack: list[Job], sigmas: torch.Tensor) -> list[_Prepared]:
        """Embeddings, augmented latents and starting noise, drawn in diffusers' order per job."""
        scale = self.model.vae_scale_factor
        channels = self.model.vae.config.latent_channels
        to_embed, to_encode, keys, noises, generators = {}, {}, [], [], []
        for job in pack:
            p = job.params
            image = image_to_tensor(job.image)
            latent_shape = (1, p.num_frames, channels, p.height // scale, p.width // scale)
            augmentation, start, noise_key, generator = _draws(job, image.shape, latent_shape)
            noises.append(start * initial_noise_scale(sigmas))
            generators.append(generator)
            embed_image = job.embed_image if job.embed_image is not None else job.image
            embed_key = image_digest(embed_image)
            key = (image_digest(job.image), noise_key, p.noise_aug_strength)
            keys.append((embed_key, key))
            if self.embeddings.get(embed_key) is None:
                to_embed[embed_key] = image_to_tensor(embed_image) if job.embed_image is not None else image
            if self.latents.get(key) is None:
                to_encode[key] = image + p.noise_aug_strength * augmentation
        for group in _same_shape(to_embed):
            embeds = clip_embeddings(self.model, torch.cat([to_embed[key] for key in group]))
            for key, embed in zip(group, embeds):
                self.embeddings.put(key, embed)
        self.counts["clip"] += len(to_embed)
        if to_encode:
            encoded = vae_latents(self.model, torch.cat(list(to_encode.values())))
            self.counts["vae_encode"] += len(to_encode)
            for key, latent in zip(to_encode, encoded):
                self.latents.put(key, latent)
        return [
            _Prepared(self.embeddings.get(embed_key), self.latents.get(key), noise, generator)
            for (embed_key, key), noise, generator in zip(keys, noises, generators)
        ]

    def _denoiser(
        self, pack: list[Job], prepared: list[_Prepared], sigmas: torch.Tensor, cache: DeepFeatureCache | None
    ):
        """The denoiser of a pack: per-job time ids, per-frame guidance, unconditional rows only for the jobs
        whose guidance interval holds the current noise level, the deep features from `cache` if given."""
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
        bounds = [guided_sigmas(pack[i].params, sigmas) for i in guided]

        def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            level = float(sigma)
            active = [n for n, (low, high) in enumerate(bounds) if low <= level <= high]
            uncond = [guided[n] for n in active]
            rows = [*active, *range(len(guided), len(row_ids))]
            scaled = scale_input(x, sigma)
            if cache is not None:
                cache.next_call(rows)
            v = model.unet(
                torch.cat([torch.cat([scaled[uncond], scaled]).to(dtype), row_concat[rows]], dim=2),
                noise_condition(sigma),
                encoder_hidden_states=row_embeds[rows],
                added_time_ids=row_ids[rows],
                return_dict=False,
            )[0].float()
            self.counts["unet_rows"] += v.shape[0]
            v_uncond, v = v[: len(uncond)], v[len(uncond) :]
            if uncond:
                v[uncond] = v_uncond + scales[active] * (v[uncond] - v_uncond)
            return v_to_denoised(v, x, sigma)

        return denoise


def guided_sigmas(params, sigmas: torch.Tensor) -> tuple[float, float]:
    """The (lowest, highest) noise level at which a job is guided: its guidance interval's steps, or all."""
    start, end = params.guidance_interval or (0, params.steps)
    return float(sigmas[end - 1]), float(sigmas[start])


def _draws(
    job: Job, image_shape: tuple, latent_shape: tuple
) -> tuple[torch.Tensor, torch.Tensor, object, torch.Generator]:
    """A job's N(0, 1) augmentation noise and starting latents, a key that names the augmentation, and the
    job's generator for any later draws (a stochastic sampler's)."""
    generator = torch.Generator("cpu").manual_seed(job.params.seed)
    if job.noise is None:
        augmentation = torch.randn(image_shape, generator=generator)
        return augmentation, torch.randn(latent_shape, generator=generator), job.params.seed, generator
    augmentation = job.noise.augmentation.detach().to("cpu", torch.float32).reshape(image_shape)
    key = hashlib.sha1(augmentation.numpy().tobytes()).hexdigest()
    latents = job.noise.latents.detach().to("cpu", torch.float32).reshape(latent_shape)
    return augmentation, latents, key, generator


def _job_noise(generators: list[torch.Generator]):
    """A stochastic sampler's noise source: each job's rows drawn from its own generator, so that a job's
    video does not depend on its pack."""

    def draw(like: torch.Tensor) -> torch.Tensor:
        rows = [torch.randn(like.shape[1:], generator=generator) for generator in generators]
        return torch.stack(rows).to(like.device, like.dtype)

    return draw


def _same_shape(tensors: dict) -> list[list]:
    """The dict's keys grouped by their tensor's shape, in order (tensors of one shape embed in one batch)."""
    groups: dict[tuple, list] = {}
    for key, tensor in tensors.items():
        groups.setdefault(tuple(tensor.shape), []).append(key)
    return list(groups.values())
