"""svdlab.generate: images in, videos (frames + manifest, optionally files) out."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from svdlab.engine import Job, VideoEngine
from svdlab.errors import InvalidParameterError, OutOfMemoryError, OutputError, SvdlabError
from svdlab.media import VIDEO_FORMATS, describe_source, fit_image, frames_to_uint8, load_image, source_stem
from svdlab.media.atomic import check_writable, remove_stale_temps
from svdlab.media.fit import warn_if_cropped_hard
from svdlab.media.manifest import (
    build_manifest,
    image_info,
    manifest_path,
    output_info,
    save_video,
    settings_hash,
    video_path,
)
from svdlab.models import SVDModel, load_model
from svdlab.params import GenerationParams, make_params, params_identity, parse_size
from svdlab.post.cascade import Upscalers, cascade, stage_records
from svdlab.post.keyframes import LastFrame, keyframes_entry, load_last_frame
from svdlab.post.upscale import Upscaler
from svdlab.progress import generation_progress
from svdlab.training.lora import check_lora, lora_applied

MEMORY_HINT = "try --offload model, --decode-chunk-size 1, --forward-chunking or --batch-size 1"


@dataclass
class GeneratedVideo:
    """One finished video: frames (F, 3, H, W) float32 in [0, 1], its manifest, and its file if written."""

    source: str
    frames: torch.Tensor
    manifest: dict
    path: Path | None = None


def output_name(stem: str, model: SVDModel, params: GenerationParams, settings: str) -> str:
    """A file stem naming a video's model and main settings, ending in `settings`, the short hash of every
    setting that shapes its frames (model weights, dtype, LoRA and scale, steps, guidance, size, ...)."""
    model_name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(model.name).name).strip("._-") or "model"
    return (
        f"{stem}_{model_name}_mb{params.motion_bucket_id}_aug{params.noise_aug_strength:g}"
        f"_fps{params.fps}_seed{params.seed}_{settings}"
    )


def _check_not_replacing(target: Path, settings: str, pixels_sha256: str) -> None:
    """Refuse to replace an existing video unless its manifest says the same image and settings made it."""
    if not target.exists():
        return
    try:
        made = json.loads(manifest_path(target).read_text())
        same = settings_hash(made) == settings and made["image"]["pixels_sha256"] == pixels_sha256
    except (OSError, ValueError, KeyError, TypeError):
        same = False
    if not same:
        raise OutputError(
            f"{target} already exists and was made from another image or other settings; "
            "pass --overwrite (overwrite=True) to replace it, or choose another output folder"
        )


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}-{n}"
    taken.add(candidate)
    return candidate


def generate(
    images: Sequence | object,
    model: str | SVDModel = "demo",
    *,
    motion_bucket_id: int | None = None,
    noise_aug_strength: float | None = None,
    fps: int | None = None,
    num_frames: int | None = None,
    steps: int | None = None,
    min_guidance: float | None = None,
    max_guidance: float | None = None,
    seed: int = 42,
    size: str | tuple[int, int] | None = None,
    fit: str = "crop",
    decode_chunk_size: int | None = None,
    sampler: str = "euler",
    schedule: str = "karras",
    guidance_interval: str | tuple[int, int] | None = None,
    cache_interval: int = 1,
    offload: str = "none",
    forward_chunking: bool = False,
    dtype: str | torch.dtype | None = None,
    device: str | None = None,
    variant: str | None = None,
    allow_pickle: bool = False,
    lora: str | Path | None = None,
    lora_scale: float = 1.0,
    batch_size: int | None = None,
    max_pixels: int | None = None,
    format: str = "mp4",
    out: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = False,
    on_image_error: Callable[[str, SvdlabError], None] | None = None,
    last_frame: str | Path | object | None = None,
    loop: bool = False,
    interpolate: str = "none",
    interpolate_factor: int = 2,
    upscale: int = 1,
    upscale_method: str = "model",
    upscale_model: str | None = None,
    sr_model: str | Path | None = None,
) -> list[GeneratedVideo]:
    """Make one video per image with the same settings; images that share a shape are batched.

    A bad image raises InvalidImageError before any work, unless `on_image_error` is given: then it
    is called with the image's name and the error, and the other images still run. With `out`, each
    video and its JSON manifest are written there as soon as the video is finished (the folder is checked
    first, and temp files that killed runs left in it are removed); a file there that another image or
    other settings made is never replaced unless `overwrite`. With `lora`, that
    LoRA file is applied at `lora_scale` and named in each manifest; a passed SVDModel gets it only for
    this call and is left as it was. Images over `max_pixels` (default: SVDLAB_MAX_PIXELS, else 64 Mi)
    are refused. `sampler`, `schedule`, `guidance_interval` ('START:END' in steps, END excluded: the
    unconditional branch runs only there) and `cache_interval` (the deep UNet blocks rerun every that many
    evaluations, 1 = always) trade exactness for speed; the defaults are exact. `last_frame` (an image)
    makes each video end on it, and `loop` on its own first image (that last frame is then left out, so the
    video plays round without showing it twice): a context model takes both ends as context frames; a
    one-frame model joins them by time-reversal fusion. Each manifest's `keyframes` says
    which. `interpolate` ("flow", "blend" or "model") puts `interpolate_factor - 1` new frames between each
    pair of the finished frames and multiplies the frame rate by the factor; "model" generates them with
    the same context model (flow on a one-frame model), and each manifest's `interpolation` says which.
    `upscale` (2 or 4) then upscales them by `upscale_method`: "model" (a learned video upscaler,
    `upscale_model` or the model's own, demo-upscaler for the demo models), "sr" (the super-resolution
    file `sr_model`, through spandrel), "bicubic" or "lanczos"; the manifest's `upscale` and `cascade` say
    what ran, each stage's size and time.
    """
    if isinstance(images, (str, Path)) or not isinstance(images, Sequence):
        images = [images]
    if format not in VIDEO_FORMATS:
        raise InvalidParameterError(
            f"format={format!r} is not allowed: choose one of {', '.join(VIDEO_FORMATS)}"
        )
    width, height = parse_size(size) if isinstance(size, str) else (size or (None, None))
    params = make_params(
        motion_bucket_id=motion_bucket_id,
        noise_aug_strength=noise_aug_strength,
        fps=fps,
        num_frames=num_frames,
        steps=steps,
        min_guidance=min_guidance,
        max_guidance=max_guidance,
        seed=seed,
        width=width,
        height=height,
        fit=fit,
        decode_chunk_size=decode_chunk_size,
        sampler=sampler,
        schedule=schedule,
        guidance_interval=guidance_interval,
        cache_interval=cache_interval,
        loop=loop or None,
        interpolate=interpolate,
        interpolate_factor=interpolate_factor,
        upscale=upscale,
        upscale_method=upscale_method,
        upscale_model=upscale_model,
        sr_model=str(sr_model) if sr_model is not None else None,
    )
    if batch_size is not None and batch_size < 1:
        raise InvalidParameterError(
            f"batch_size={batch_size} is not allowed: use 1 or more, or leave it unset"
        )
    if lora is not None:
        check_lora(lora, offload if isinstance(model, str) else model.memory["offload"])
    if out is not None:
        check_writable(out)  # a bad --out fails now, not after the work
        remove_stale_temps(out)  # what a killed run left half-written there
    if isinstance(model, str):
        model = load_model(
            model,
            device=device,
            dtype=dtype,
            variant=variant,
            allow_pickle=allow_pickle,
            offload=offload,
            forward_chunking=forward_chunking,
        )
    params = params.resolved(model)
    upscaler = Upscalers(str(model.device)).for_params(params, model)
    last = load_last_frame(params, last_frame, max_pixels) if last_frame is not None else None

    jobs = []
    for source in images:
        name = describe_source(source)
        try:
            image = load_image(source, max_pixels=max_pixels)
        except SvdlabError as error:
            if on_image_error is None:
                raise
            on_image_error(name, error)
            continue
        warn_if_cropped_hard(name, image.size, params.width, params.height, params.fit)
        fitted = fit_image(image, params.width, params.height, params.fit)
        info = image_info(name, image, params.fit)
        stem, context = source_stem(source) + ("_loop" if params.loop else ""), None
        if last is not None:
            stem, context = stem + last.suffix, last.context(fitted)
        jobs.append(Job(image=fitted, params=params, tag=(stem, info), context=context))

    results, taken = [], set()
    with lora_applied(model, lora, lora_scale) as lora_entry:
        shaping = {
            "model": model.describe(),
            "params": params_identity(params.model_dump()),
            "lora": lora_entry,
            **keyframes_entry(model, params, last),
        }
        settings = settings_hash(shaping)
        for job in jobs:
            stem, info = job.tag
            name = _unique(output_name(stem, model, params, settings), taken)
            if out is not None and not overwrite:
                _check_not_replacing(video_path(Path(out), name, format), settings, info["pixels_sha256"])
            job.tag = (name, info)
        engine = VideoEngine(model, batch_size=batch_size)
        packs = engine.plan(jobs)
        with generation_progress(sum(pack[0].params.steps for pack in packs), len(jobs), progress) as bar:
            try:
                for pack in packs:
                    for result in engine.run_pack(pack, on_step=bar.step):
                        name, info = result.job.tag
                        finished = _finish(model, result, name, info, format, out, lora_entry, last, upscaler)
                        results.append(finished)
                        bar.video()
            except torch.OutOfMemoryError as error:
                done = (
                    f"; the videos finished so far ({len(results)}) are in {out}" if out and results else ""
                )
                raise OutOfMemoryError(f"out of memory on {model.device}: {MEMORY_HINT}{done}") from error
    return results


def _finish(
    model,
    result,
    name: str,
    info: dict,
    format: str,
    out,
    lora: dict | None,
    last: LastFrame | None,
    upscaler: Upscaler | None,
) -> GeneratedVideo:
    """Run the cascade, build the manifest and, with an output folder, write the video and its manifest."""
    params = result.job.params
    target = video_path(Path(out), name, format) if out is not None else None
    manifest = build_manifest(
        model, params, info, result.timings, output_info(params, format, target), lora=lora
    )
    frames = result.frames
    pixels, entries = cascade(
        frames_to_uint8(frames), params, model, upscaler, result.timings.get("sampling_s")
    )
    manifest.update({**keyframes_entry(model, params, last), **entries})
    manifest["timings"].update(stage_records(entries)[0])
    if entries:
        frames = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div(255.0)
    if target is not None:
        target = save_video(frames, manifest["output"]["fps"], format, target, manifest)
    return GeneratedVideo(source=info["source"], frames=frames, manifest=manifest, path=target)
