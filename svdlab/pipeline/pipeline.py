"""svdlab.StableVideoDiffusionPipeline: diffusers' pipeline class, call for call, over svdlab's engine.

Every argument and default is diffusers'; so is the random draw order (augmentation noise for each
image, then the starting latents, from the caller's generators), so the frames are diffusers' frames.
Where diffusers is wrong (tensor and array images, several images with several videos each, decode
chunks that straddle two videos) each video is what a call for that video alone would give.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import (
    StableVideoDiffusionPipelineOutput,
)
from diffusers.utils.torch_utils import randn_tensor
from tqdm.auto import tqdm

from svdlab.engine import DrawnNoise, Job, VideoEngine
from svdlab.engine.sampler import noise_condition
from svdlab.errors import InvalidParameterError, SvdlabWarning
from svdlab.media import fit_image
from svdlab.models import SVDModel, load_model
from svdlab.models.loading import default_device, place_model
from svdlab.models.presets import preset_for_config
from svdlab.params import make_params
from svdlab.pipeline.inputs import input_images, per_video
from svdlab.pipeline.outputs import check_output_type, format_videos
from svdlab.pipeline.recording import CallRecording, fresh_seed

COMPONENTS = ("vae", "image_encoder", "unet", "scheduler", "feature_extractor")
LOAD_OPTIONS = ("torch_dtype", "variant", "use_safetensors")


def _component(name: str) -> property:
    """A pipeline attribute that reads and replaces one of the model's parts (e.g. `pipe.unet = compiled`)."""
    return property(
        lambda self: getattr(self.model, name),
        lambda self, value: setattr(self.model, name, value),
        doc=f"The model's {name}.",
    )


class StableVideoDiffusionPipeline:
    """Image to video with Stable Video Diffusion: diffusers' pipeline interface over svdlab's VideoEngine."""

    model_cpu_offload_seq = "image_encoder->unet->vae"
    _callback_tensor_inputs = ["latents"]
    vae = _component("vae")
    image_encoder = _component("image_encoder")
    unet = _component("unet")
    scheduler = _component("scheduler")
    feature_extractor = _component("feature_extractor")

    def __init__(self, vae, image_encoder, unet, scheduler, feature_extractor):
        parameter = next(unet.parameters())
        model = SVDModel(
            unet=unet.eval(),
            vae=vae.eval(),
            image_encoder=image_encoder.eval(),
            feature_extractor=feature_extractor,
            scheduler=scheduler,
            preset=preset_for_config(
                unet.config.num_frames, unet.config.sample_size, 2 ** (len(vae.config.block_out_channels) - 1)
            ),
            source="components",
            location="components",
            device=parameter.device,
            dtype=parameter.dtype,
        )
        self._attach(model, model_name=None)

    @classmethod
    def from_model(cls, model: SVDModel) -> StableVideoDiffusionPipeline:
        """The pipeline over an SVDModel that svdlab already loaded."""
        pipe = cls.__new__(cls)
        local = model.source == "local"  # a sweep spec must find the folder from wherever it runs
        pipe._attach(model, model_name=str(Path(model.location).resolve()) if local else model.name)
        return pipe

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | Path, **options
    ) -> StableVideoDiffusionPipeline:
        """Load a hub id, a local diffusers folder or an svdlab preset (e.g. "demo") on the CPU.

        Takes diffusers' `torch_dtype` (float32 by default), `variant` and `use_safetensors`.
        """
        unknown = sorted(set(options) - set(LOAD_OPTIONS))
        if unknown:
            raise InvalidParameterError(
                f"from_pretrained does not take {', '.join(unknown)} in svdlab; "
                f"it takes {', '.join(LOAD_OPTIONS)}"
            )
        model = load_model(
            pretrained_model_name_or_path,
            device="cpu",
            dtype=options.get("torch_dtype") or torch.float32,
            variant=options.get("variant"),
            allow_pickle=options.get("use_safetensors") is False,
        )
        return cls.from_model(model)

    def _attach(self, model: SVDModel, model_name: str | None) -> None:
        self.model = model
        self.model_name = model_name
        self.engine = VideoEngine(model)
        self._progress_bar_config: dict = {}
        self._recording: CallRecording | None = None
        self._num_timesteps = 0

    @property
    def components(self) -> dict:
        """The five networks and processors by their diffusers names."""
        return {name: getattr(self.model, name) for name in COMPONENTS}

    @property
    def device(self) -> torch.device:
        """Where the model runs."""
        return self.model.device

    @property
    def dtype(self) -> torch.dtype:
        """The model's compute dtype."""
        return self.model.dtype

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent cell."""
        return self.model.vae_scale_factor

    @property
    def num_timesteps(self) -> int:
        """How many denoising steps the current or last call ran."""
        return self._num_timesteps

    def save_pretrained(
        self, save_directory: str | Path, safe_serialization: bool = True, variant: str | None = None
    ) -> None:
        """Write a diffusers folder (safetensors) that diffusers and svdlab both load."""
        if not safe_serialization:
            raise InvalidParameterError("svdlab saves safetensors only; leave safe_serialization=True")
        self.model.save_pretrained(save_directory, variant=variant)

    def to(self, *args, **kwargs) -> StableVideoDiffusionPipeline:
        """Move to a device and/or dtype, as `pipe.to("cuda")`, `pipe.to(torch.float16)` or both."""
        device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
        if kwargs:
            raise InvalidParameterError(
                f"to() does not take {', '.join(sorted(kwargs))}; it takes device and dtype"
            )
        for arg in args:
            if isinstance(arg, torch.dtype):
                dtype = arg
            else:
                device = arg
        device = torch.device(device) if device is not None else self.model.device
        self._place(device, dtype or self.model.dtype, "none")
        return self

    def enable_model_cpu_offload(
        self, gpu_id: int | None = None, device: str | torch.device | None = None
    ) -> None:
        """Keep each network in CPU memory until it runs (without an accelerator: a warning, no change)."""
        self._offload("model", gpu_id, device)

    def enable_sequential_cpu_offload(
        self, gpu_id: int | None = None, device: str | torch.device | None = None
    ) -> None:
        """Move weights to the accelerator layer by layer (a warning and no change where there is none)."""
        self._offload("sequential", gpu_id, device)

    def set_progress_bar_config(self, **kwargs) -> None:
        """Options for the tqdm progress bar of each call (e.g. disable=True), as in diffusers."""
        self._progress_bar_config = kwargs

    @contextmanager
    def recording(self) -> Iterator[CallRecording]:
        """Record the videos made inside the block; `.save_sweep_spec(path)` then makes them a sweep."""
        self._recording = CallRecording(self.model_name)
        try:
            yield self._recording
        finally:
            self._recording = None

    def _offload(self, mode: str, gpu_id: int | None, device: str | torch.device | None) -> None:
        target = torch.device(device) if device is not None else default_device()
        if target.type == "cpu":
            warnings.warn(
                f"enable_{mode}_cpu_offload: no accelerator (CUDA or MPS) here, so the model stays on the "
                "CPU and nothing changes",
                SvdlabWarning,
                stacklevel=3,
            )
            return
        if gpu_id is not None:
            target = torch.device(target.type, gpu_id)
        self._place(target, self.model.dtype, mode)

    def _place(self, device: torch.device, dtype: torch.dtype, offload: str) -> None:
        place_model(self.model, device, dtype, offload, self.model.memory["forward_chunking"])
        self.engine = VideoEngine(self.model)  # its caches hold tensors of the old placement

    @torch.no_grad()
    def __call__(
        self,
        image,
        height: int = 576,
        width: int = 1024,
        num_frames: int | None = None,
        num_inference_steps: int = 25,
        sigmas: list[float] | None = None,
        min_guidance_scale: float = 1.0,
        max_guidance_scale: float = 3.0,
        fps: int | list[int] = 7,
        motion_bucket_id: int | list[int] = 127,
        noise_aug_strength: float | list[float] = 0.02,
        decode_chunk_size: int | None = None,
        num_videos_per_prompt: int | None = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: str | None = "pil",
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ["latents"],  # noqa: B006 - diffusers' signature
        return_dict: bool = True,
    ):
        """Generate videos from images with diffusers' arguments and defaults; returns diffusers' output.

        `fps`, `motion_bucket_id` and `noise_aug_strength` may also be lists with one value per video
        (images x num_videos_per_prompt, image by image); all videos of a call share the engine's UNet calls.
        """
        if sigmas is not None:
            raise InvalidParameterError(
                "sigmas: custom noise levels are not supported by svdlab's pipeline; leave sigmas unset "
                "(it samples the Karras schedule of num_inference_steps, as diffusers does by default)"
            )
        output_type = output_type or "pil"
        check_output_type(output_type)
        unknown = sorted(set(callback_on_step_end_tensor_inputs) - set(self._callback_tensor_inputs))
        if unknown:
            raise InvalidParameterError(
                "callback_on_step_end_tensor_inputs may only name "
                f"{', '.join(self._callback_tensor_inputs)}, not {', '.join(unknown)}"
            )
        images = input_images(image)
        copies = num_videos_per_prompt or 1
        count = len(images) * copies
        why = f"{len(images)} image(s) x num_videos_per_prompt {copies}"
        if isinstance(generator, list) and len(generator) != count:
            raise InvalidParameterError(
                f"generator is a list of {len(generator)} but this call makes {count} videos ({why}); "
                "give one generator per video or a single generator"
            )
        seeds = self._seeds(generator, copies, count, latents)
        num_frames = num_frames if num_frames is not None else self.model.unet.config.num_frames
        settings = zip(
            per_video("fps", fps, count, why),
            per_video("motion_bucket_id", motion_bucket_id, count, why),
            per_video("noise_aug_strength", noise_aug_strength, count, why),
        )
        params = [
            make_params(
                fps=video_fps,
                motion_bucket_id=bucket,
                noise_aug_strength=strength,
                num_frames=num_frames,
                steps=num_inference_steps,
                min_guidance=min_guidance_scale,
                max_guidance=max_guidance_scale,
                width=width,
                height=height,
                fit="stretch",
                decode_chunk_size=decode_chunk_size if decode_chunk_size is not None else num_frames,
                seed=seed or 0,
            ).resolved(self.model)
            for (video_fps, bucket, strength), seed in zip(settings, seeds)
        ]
        augmentation, start = self._draw(len(images), count, params[0], generator, latents)
        fitted = [fit_image(picture, width, height, "stretch") for picture in images]
        jobs = [
            Job(
                image=fitted[k // copies],
                params=params[k],
                tag=k,
                noise=DrawnNoise(augmentation[k // copies], start[k]),
                embed_image=images[k // copies],  # diffusers embeds the image as given, before resizing it
            )
            for k in range(count)
        ]
        results = self._run(
            jobs, callback_on_step_end, callback_on_step_end_tensor_inputs, decode=output_type != "latent"
        )
        if self._recording is not None:
            for k in range(count):
                self._recording.add(images[k // copies], params[k], seeds[k])
        videos = [result.latents if output_type == "latent" else result.frames for result in results]
        frames = format_videos(videos, output_type)
        return StableVideoDiffusionPipelineOutput(frames=frames) if return_dict else frames

    def _seeds(self, generator, copies: int, count: int, latents) -> list[int | None]:
        """Each video's seed where a sweep can replay its noise from it (checked before anything is drawn)."""
        if latents is not None:
            return [None] * count
        if isinstance(generator, list):
            return [
                fresh_seed(item) if copies == 1 and generator.count(item) == 1 else None for item in generator
            ]
        return [fresh_seed(generator) if count == 1 else None] * count

    def _draw(self, images: int, count: int, params, generator, latents) -> tuple[torch.Tensor, torch.Tensor]:
        """Augmentation noise per image, then starting latents per video, drawn as diffusers draws them."""
        device, scale = self.model.device, self.model.vae_scale_factor
        augmentation = randn_tensor(
            (images, 3, params.height, params.width), generator=generator, device=device, dtype=torch.float32
        )
        shape = (
            count,
            params.num_frames,
            self.model.unet.config.in_channels // 2,
            params.height // scale,
            params.width // scale,
        )
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=self.model.dtype)
        elif tuple(latents.shape) != shape:
            raise InvalidParameterError(
                f"latents have shape {tuple(latents.shape)} but this call needs {shape} "
                "(videos, frames, channels, height / vae scale, width / vae scale)"
            )
        return augmentation, latents

    def _run(
        self, jobs: list[Job], callback: Callable | None, tensor_inputs: list[str], decode: bool
    ) -> list:
        """The engine's results in video order; with a step-end callback all videos run as one pack."""
        packs = [jobs] if callback is not None else self.engine.plan(jobs)
        steps = jobs[0].params.steps
        self._num_timesteps = steps
        step_end = None
        if callback is not None:

            def step_end(i: int, sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor | None:
                outputs = callback(self, i, noise_condition(sigma), {name: x for name in tensor_inputs})
                return (outputs or {}).get("latents")

        results = []
        with tqdm(total=steps * len(packs), **self._progress_bar_config) as bar:
            for pack in packs:
                results.extend(
                    self.engine.run_pack(pack, on_step=bar.update, step_end=step_end, decode=decode)
                )
        return sorted(results, key=lambda result: result.job.tag)
