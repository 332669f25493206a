"""Manifests: the JSON written beside each video with everything needed to reproduce it."""

from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path

from svdlab.media.atomic import remove_path, write_json_atomic
from svdlab.media.export import write_encoded, write_video
from svdlab.params import params_identity
from svdlab.timestamps import utc_now

PACKAGES = ("svdlab", "diffusers", "transformers", "torch", "accelerate")
MODEL_KEYS_THAT_SHAPE_FRAMES = ("source", "location", "revision", "weights_sha256", "dtype")
SETTINGS_HASH_LENGTH = 8


def versions() -> dict[str, str]:
    """Versions of Python and the packages that shape the output."""
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def build_manifest(model, params, image: dict, timings: dict, output: dict, lora: dict | None = None) -> dict:
    """The manifest of one video: model (and LoRA) identity, parameters, input, versions, timings, output."""
    return {
        "created": utc_now(),
        "model": model.describe(),
        **({"lora": lora} if lora is not None else {}),
        "params": params.model_dump(),
        "memory": dict(model.memory),
        "image": image,
        "versions": versions(),
        "timings": {key: round(value, 4) for key, value in timings.items()},
        "output": output,
    }


def image_info(source: str, image, fit: str) -> dict:
    """The manifest's description of an input image: its name, size, pixel hash and how it was fitted."""
    return {
        "source": source,
        "original_size": list(image.size),
        "pixels_sha256": hashlib.sha256(image.tobytes()).hexdigest(),
        "fit": fit,
    }


def video_path(folder: Path, name: str, format: str) -> Path:
    """Where a video named `name` goes: a file with the format's suffix, or a folder of PNG frames."""
    return folder / (f"{name}_frames" if format == "png" else f"{name}.{format}")


def manifest_path(video: Path) -> Path:
    """The manifest beside a video: its name with .json for a file, the folder's name + .json for PNGs."""
    return video.with_name(f"{video.name}.json") if video.is_dir() else video.with_suffix(".json")


def settings_hash(manifest: dict) -> str:
    """A short hash of everything in a manifest that shapes the frames: model, dtype, LoRA, parameters and
    the ends a video is held to."""
    model = {key: manifest["model"].get(key) for key in MODEL_KEYS_THAT_SHAPE_FRAMES}
    lora = manifest.get("lora")
    payload = {
        "model": model,
        "lora": {"sha256": lora["sha256"], "scale": lora["scale"]} if lora else None,
        "params": params_identity(manifest["params"]),
    }
    keyframes = manifest.get("keyframes")
    if keyframes:  # only then, so that hashes of videos made before keyframes existed stay the same
        last = keyframes.get("last_frame")
        payload["keyframes"] = [keyframes["mode"], keyframes["method"], last and last["pixels_sha256"]]
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:SETTINGS_HASH_LENGTH]


def output_info(params, format: str, target: Path | None) -> dict:
    """The manifest's description of the video file."""
    frames = params.num_frames - (1 if params.loop else 0)  # a loop leaves out its repeated first frame
    factor = params.interpolate_factor if params.interpolate != "none" else 1
    info = {
        "format": format,
        "fps": params.fps * factor,
        "frames": (frames - 1) * factor + 1,
        "width": params.width * params.upscale,
        "height": params.height * params.upscale,
    }
    if target is not None:
        info["file"] = target.name
    return info


def save_video(frames, fps: int, format: str, target: Path, manifest: dict) -> Path:
    """Write the video, then its manifest beside it (same name, .json), each atomically; a video whose
    manifest cannot be written is removed again, so no video stands without its manifest."""
    return _with_manifest(write_video(frames, target, fps=fps, format=format), manifest)


def save_encoded(files: dict[str, bytes], target: Path, manifest: dict) -> Path:
    """`save_video` for a video already encoded (by `encode_video`, e.g. on a Ray worker)."""
    return _with_manifest(write_encoded(files, target), manifest)


def _with_manifest(path: Path, manifest: dict) -> Path:
    """Write the manifest beside a written video, removing the video if that fails."""
    try:
        write_json_atomic(manifest_path(path), manifest)
    except BaseException:
        remove_path(path)
        raise
    return path
