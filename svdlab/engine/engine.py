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
    context_channels,
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
    sample_fused,
    scale_input,
    v_to_denoised,
)
from svdlab.errors import InvalidParameterError

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
    `noise` and `embed_image` (diffusers embeds its input before resizing it) replace those. `context`
    gives frames by index instead (fitted images; `image` is then the first of them, or None when there
    are none): a context model takes any; a one-frame model takes frame 0, and frame 0 with the last frame
    by time-reversal fusion. A job without `context` has `image` as frame 0, and with `params.loop` as the
    last frame too; a loop's video leaves that last frame out.
    """

    image: PIL.Image.Image | None
    params: object
    tag: object = None
    noise: DrawnNoise | None = None
    embed_image: PIL.Image.Image | None = None
    context: dict[int, PIL.Image.Image] | None = None

    def given_frames(self) -> dict[int, PIL.Image.Image]:
        """The given frames by index, in order: `context`, or else `image` at frame 0 (and, for a loop, at
        the last frame too)."""
        if self.context is not None:
            return dict(sorted(self.context.items()))
        if getattr(self.params, "loop", False):
            return {0: self.image, self.params.num_frames - 1: self.image}
        return {0: self.image}


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
    """A job's conditioning (CLIP embedding (1, D), per-frame input channels (F, C', h, w); for time-reversal
    fusion also those of the last frame; for a context model its given frames' mask (F,) and scaled
    latents (F, C, h, w)) and starting noise."""

    embedding: torch.Tensor
    concat: torch.Tensor
    noise: torch.Tensor
    generator: torch.Generator
    reverse: tuple[torch.Tensor, torch.Tensor] | None = None
    given: tuple[torch.Tensor, torch.Tensor] | None = None


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
        jobs = list(jobs)
        for job in jobs:
            check_context(self.model, job)
        packs = []
        for key, group in group_jobs(jobs, self.two_way).items():
            size = self.batch_size or self.sizer.size_for(
                self.model, key, any(uses_guidance(job.params) for job in group), len(group)
            )
            packs.extend(split(group, size))
        return packs

    def two_way(self, job: Job) -> bool:
        """Whether the job samples both ways (time-reversal fusion): a first and a last frame on a one-frame
        model."""
        return not self.model.preset.context and len(job.given_frames()) > 1

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
        replacements; with `decode=False` results carry only their latents. A context model's given frames
        are kept to their encodings at every step (`_given_frames_kept`).
        """
        first = pack[0].params
        sigma_min, sigma_max = self.model.sigma_range
        sigmas = SCHEDULES[first.schedule](first.steps, sigma_min, sigma_max)
        started = time.perf_counter()
        prepared = self._prepare(pack, sigmas)
        conditioned = time.perf_counter()
        cache = DeepFeatureCache(self.model.unet, first.cache_interval) if first.cache_interval > 1 else None
        embeds = torch.stack([item.embedding for item in prepared])
        denoise = self._denoiser(pack, embeds, torch.stack([item.concat for item in prepared]), sigmas, cache)
        noise = torch.cat([item.noise for item in prepared]).to(self.model.device)

        context = self.model.preset.context
        keep_given = _given_frames_kept(prepared, sigmas, self.model.device) if context else None

        def after_step(i: int, x: torch.Tensor) -> torch.Tensor | None:
            if keep_given is not None:
                x = keep_given(i, x)
            if on_step is not None:
                on_step()
            replaced = step_end(i, sigmas[i], x) if step_end is not None else None
            return x if replaced is None else replaced

        if self.two_way(pack[0]):
            backward = self._denoiser(
                pack,
                torch.stack([item.reverse[0] for item in prepared]),
                torch.stack([item.reverse[1] for item in prepared]),
                sigmas,
                None,
            )
            latents = sample_fused(
                denoise, backward, noise, sigmas.to(self.model.device), callback=after_step
            )
        else:
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
            if (
                frames is not None and job.params.loop
            ):  # its last frame is its first: left out, it plays round
                frames = frames[:-1]
            timings = {
                "conditioning_s": conditioned - started,
                "sampling_s": sampled - conditioned,
                "decode_s": time.perf_counter() - decode_start,
                "pack_size": len(pack),
            }
            yield VideoResult(job=job, frames=frames, timings=timings, latents=video_latents)

    def _prepare(self, pack: list[Job], sigmas: torch.Tensor) -> list[_Prepared]:
        """Embeddings, per-frame conditioning and starting noise, drawn in diffusers' order per job (the
        augmentation noise of each given frame, in frame order, then the starting latents)."""
        scale = self.model.vae_scale_factor
        channels = self.model.vae.config.latent_channels
        to_embed, to_encode, plans, noises, generators = {}, {}, [], [], []
        for job in pack:
            p = job.params
            given = job.given_frames()
            latent_shape = (1, p.num_frames, channels, p.height // scale, p.width // scale)
            image_shape = image_to_tensor(next(iter(given.values()))).shape if given else None
            augmentations, start, noise_key, generator = _draws(job, image_shape, latent_shape)
            noises.append(start * initial_noise_scale(sigmas))
            generators.append(generator)
            frame_keys = {}
            for n, (index, image) in enumerate(given.items()):
                key = (image_digest(image), noise_key if n == 0 else (noise_key, n), p.noise_aug_strength)
                frame_keys[index] = key
                if self.latents.get(key) is None:
                    to_encode[key] = image_to_tensor(image) + p.noise_aug_strength * augmentations[n]
            embed_keys = []
            for n, image in enumerate(given.values()):
                if n and not self.two_way(job):
                    break  # a context model sees the first given frame's embedding; a two-way job both ends'
                embed_image = job.embed_image if n == 0 and job.embed_image is not None else image
                embed_keys.append(image_digest(embed_image))
                if self.embeddings.get(embed_keys[-1]) is None:
                    to_embed[embed_keys[-1]] = image_to_tensor(embed_image)
            plans.append((frame_keys, embed_keys))
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
            self._conditioning(job, frame_keys, embed_keys, noise, generator)
            for job, (frame_keys, embed_keys), noise, generator in zip(pack, plans, noises, generators)
        ]

    def _conditioning(
        self, job: Job, frame_keys: dict, embed_keys: list, noise: torch.Tensor, generator: torch.Generator
    ) -> _Prepared:
        """A job's embedding and per-frame input channels from the cached encodings."""
        frames = job.params.num_frames
        if not self.model.preset.context:
            ends = [
                self.latents.get(key).unsqueeze(0).expand(frames, -1, -1, -1) for key in frame_keys.values()
            ]
            embeds = [self.embeddings.get(key) for key in embed_keys]
            reverse = (embeds[-1], ends[-1]) if self.two_way(job) else None
            return _Prepared(embeds[0], ends[0], noise, generator, reverse)
        scale = self.model.vae_scale_factor
        shape = (
            frames,
            self.model.vae.config.latent_channels,
            job.params.height // scale,
            job.params.width // scale,
        )
        latents, mask = torch.zeros(shape), torch.zeros(frames)
        for index, key in frame_keys.items():
            latents[index], mask[index] = self.latents.get(key).float().cpu(), 1.0
        if embed_keys:
            embedding = self.embeddings.get(embed_keys[0])
        else:
            encoder = self.model.image_encoder
            embedding = torch.zeros(
                1, encoder.config.projection_dim, device=self.model.device, dtype=encoder.dtype
            )
        given = (mask, latents * self.model.vae.config.scaling_factor)
        return _Prepared(embedding, context_channels(latents, mask), noise, generator, given=given)

    def _denoiser(
        self,
        pack: list[Job],
        embeds: torch.Tensor,
        concat: torch.Tensor,
        sigmas: torch.Tensor,
        cache: DeepFeatureCache | None,
    ):
        """The denoiser of a pack, given its embeddings (B, 1, D) and per-frame input channels
        (B, F, C', h, w): per-job time ids, per-frame guidance, unconditional rows (zero embeddings and
        channels) only for the jobs whose guidance interval holds the current noise level, the deep features
        from `cache` if given."""
        model, device, dtype = self.model, self.model.device, self.model.dtype
        frames = pack[0].params.num_frames
        guided = [i for i, job in enumerate(pack) if uses_guidance(job.params)]
        embeds = embeds.to(device, dtype)
        concat = concat.to(device, dtype)
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
        row_concat = torch.cat([torch.zeros_like(concat[guided]), concat])
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


def check_context(model, job: Job) -> None:
    """Refuse given frames that lie outside the video or differ from its size, and context a one-frame
    model cannot take (it takes frame 0, or frame 0 and the last by time-reversal fusion)."""
    p = job.params
    given = job.given_frames()
    last = p.num_frames - 1
    for index, image in given.items():
        if image is None or not 0 <= index <= last:
            raise InvalidParameterError(
                f"context frame {index} is outside the video's {p.num_frames} frames (0..{last}): "
                f"give frames in that range or make the video longer"
            )
        if image.size != (p.width, p.height):
            raise InvalidParameterError(
                f"context frame {index} is {image.size[0]}x{image.size[1]}, not the video's "
                f"{p.width}x{p.height}: fit it to the video's size first"
            )
    if model.preset.context:
        return
    if set(given) not in ({0}, {0, last}):
        raise InvalidParameterError(
            f"{model.name} is a one-frame model: it takes frame 0, or frames 0 and {last} together; "
            f"frames {sorted(given) or 'none'} need a context model such as --model demo-context"
        )
    if len(given) > 1 and (p.sampler != "euler" or p.cache_interval > 1):
        raise InvalidParameterError(
            "a first and a last frame on a one-frame model are sampled by time-reversal fusion, which runs "
            "with sampler=euler and cache_interval=1; drop --sampler and --cache-interval"
        )


def guided_sigmas(params, sigmas: torch.Tensor) -> tuple[float, float]:
    """The (lowest, highest) noise level at which a job is guided: its guidance interval's steps, or all."""
    start, end = params.guidance_interval or (0, params.steps)
    return float(sigmas[end - 1]), float(sigmas[start])


def _draws(
    job: Job, image_shape: tuple, latent_shape: tuple
) -> tuple[list[torch.Tensor], torch.Tensor, object, torch.Generator]:
    """A job's N(0, 1) augmentation noise (one per given frame) and starting latents, a key that names the
    augmentation, and the job's generator for any later draws (a stochastic sampler's)."""
    generator = torch.Generator("cpu").manual_seed(job.params.seed)
    count = len(job.given_frames())
    if job.noise is None:
        augmentations = [torch.randn(image_shape, generator=generator) for _ in range(count)]
        return augmentations, torch.randn(latent_shape, generator=generator), job.params.seed, generator
    if count != 1:
        raise InvalidParameterError(
            f"given noise holds one frame's augmentation; this job gives {count} frames"
        )
    augmentation = job.noise.augmentation.detach().to("cpu", torch.float32).reshape(image_shape)
    key = hashlib.sha1(augmentation.numpy().tobytes()).hexdigest()
    latents = job.noise.latents.detach().to("cpu", torch.float32).reshape(latent_shape)
    return [augmentation], latents, key, generator


def _given_frames_kept(prepared: list[_Prepared], sigmas: torch.Tensor, device: torch.device):
    """A step callback for a context model's pack: after step i each given frame's latents are its encoding
    noised to the next level with the job's own starting draw, so that the video ends on its given frames
    as encoded (replacement, as in Ho et al.'s video diffusion models) and no job depends on its pack."""
    mask = torch.stack([item.given[0] for item in prepared]).bool().to(device)[..., None, None, None]
    clean = torch.stack([item.given[1] for item in prepared]).to(device)
    draws = torch.cat([item.noise for item in prepared]).to(device) / initial_noise_scale(sigmas)

    def keep(i: int, x: torch.Tensor) -> torch.Tensor:
        return torch.where(mask, (clean + float(sigmas[i + 1]) * draws).to(x.dtype), x)

    return keep


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
