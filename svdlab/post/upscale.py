"""Upscaling a video: `model`, a learned video upscaler (svdlab.models.upscaler) over windows of frames
that overlap and are cross-faded; `sr`, the user's own super-resolution weights through spandrel, frame by
frame (optionally stabilised along the optical flow); `bicubic` and `lanczos`, OpenCV's resampling.
Large frames go in tiles (`tile`: input pixels per side), and every choice goes into the manifest."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from svdlab.errors import InvalidParameterError, InvalidVideoError, OutOfMemoryError
from svdlab.media.videos import read_video

UPSCALE_METHODS = ("model", "sr", "bicubic", "lanczos")
RESAMPLING = {"bicubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}
WINDOW_OVERLAP = 2  # frames two neighbouring windows of the learned upscaler share, cross-faded
AUTO_TILE = {"model": 256, "sr": 512}  # input pixels per side above which frames go in tiles by default


@dataclass
class Upscaler:
    """How to upscale: the method, the scale and what the method needs (a learned upscaler, a loaded
    super-resolution model), its seed, steps, conditioning noise and temperature, tiles and stabilisation."""

    method: str
    scale: int
    model: object = None
    sr: object = None
    seed: int = 0
    steps: int | None = None
    noise_aug_strength: float | None = None
    tile: int | None = None
    stabilise: float = 0.0
    temperature: float | None = None

    def describe(self, height: int, width: int) -> dict:
        """The manifest's `upscale` entry for frames of this size: method, scale, weights and tiles."""
        entry = {"method": self.method, "scale": self.scale}
        if self.method == "model":
            entry.update(
                model=self.model.describe(),
                seed=self.seed,
                steps=self._steps(),
                noise_aug_strength=self._strength(),
                temperature=self._temperature(),
                window={"frames": self.model.preset.num_frames, "overlap": WINDOW_OVERLAP},
            )
        if self.method == "sr":
            entry["sr_model"] = self.sr.describe(self.tile_for(height, width))
        if self.method in AUTO_TILE:
            entry["tile"] = self.tile_for(height, width)
        if self.stabilise:
            entry["stabilise"] = self.stabilise
        return entry

    def tile_for(self, height: int, width: int) -> int | None:
        """The tile side used for frames of this size: the one asked for, or tiles above AUTO_TILE."""
        if self.tile is not None:
            return self.tile
        limit = AUTO_TILE.get(self.method)
        return limit if limit is not None and max(height, width) > limit else None

    def _steps(self) -> int:
        return self.steps or self.model.preset.steps

    def _strength(self) -> float:
        return (
            self.model.preset.noise_aug_strength
            if self.noise_aug_strength is None
            else self.noise_aug_strength
        )

    def _temperature(self) -> float:
        return self.model.preset.temperature if self.temperature is None else self.temperature

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """uint8 frames (F, H, W, 3) upscaled to (F, H * scale, W * scale, 3)."""
        if self.method in RESAMPLING:
            return resample(frames, self.scale, self.method)
        from svdlab.media import frames_to_uint8
        from svdlab.post.stabilise import stabilise

        pixels = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(255.0)
        tile = self.tile_for(*frames.shape[1:3])
        try:
            if self.method == "model":
                made = self._learned(pixels, tile)
            else:
                made = self.sr(pixels, tile=tile)
        except torch.OutOfMemoryError as error:
            raise OutOfMemoryError(
                f"out of memory upscaling {frames.shape[2]}x{frames.shape[1]} frames"
                f"{f' in {tile} px tiles' if tile else ''}: pass a smaller --tile (e.g. 128) or --device cpu"
            ) from error
        if self.stabilise:
            made = stabilise(made, self.stabilise)
        return frames_to_uint8(made)

    def _learned(self, pixels: torch.Tensor, tile: int | None) -> torch.Tensor:
        """The learned upscaler over overlapping windows of frames (window k drawn with seed + k)."""
        from svdlab.engine.upscaling import sample_upscaled
        from svdlab.post.tiles import tiled

        steps, strength, temperature = self._steps(), self._strength(), self._temperature()
        starts = window_starts(len(pixels), self.model.preset.num_frames, WINDOW_OVERLAP)
        total = torch.zeros(len(pixels), 3, pixels.shape[2] * self.scale, pixels.shape[3] * self.scale)
        weights = torch.zeros(len(pixels), 1, 1, 1)
        for k, start in enumerate(starts):
            window = pixels[start : start + self.model.preset.num_frames]
            made = tiled(
                lambda part, k=k: sample_upscaled(
                    self.model, part, self.scale, self.seed + k, steps, strength, temperature
                ),
                window,
                self.scale,
                tile,
            )
            ramp = window_weights(len(window), start > 0, start + len(window) < len(pixels))
            total[start : start + len(window)] += made * ramp
            weights[start : start + len(window)] += ramp
        return total / weights


def window_starts(frames: int, window: int, overlap: int) -> list[int]:
    """First frames of windows of `window` frames that cover `frames` frames, neighbours sharing at least
    `overlap`; the last window ends on the last frame."""
    if frames <= window:
        return [0]
    stride = window - overlap
    starts = list(range(0, frames - window, stride))
    return [*starts, frames - window]


def window_weights(length: int, fade_in: bool, fade_out: bool) -> torch.Tensor:
    """Per-frame weights (length, 1, 1, 1) of one window: ramps over the shared frames at each faded end."""
    weights = torch.ones(length)
    ramp = torch.arange(1, WINDOW_OVERLAP + 1, dtype=torch.float32) / (WINDOW_OVERLAP + 1)
    if fade_in:
        weights[:WINDOW_OVERLAP] = ramp
    if fade_out:
        weights[-WINDOW_OVERLAP:] = torch.minimum(weights[-WINDOW_OVERLAP:], ramp.flip(0))
    return weights.view(-1, 1, 1, 1)


def resample(frames: np.ndarray, scale: int, method: str) -> np.ndarray:
    """uint8 frames (F, H, W, 3) resized `scale` times by OpenCV's bicubic or Lanczos resampling."""
    height, width = frames.shape[1:3]
    size = (width * scale, height * scale)
    return np.stack([cv2.resize(frame, size, interpolation=RESAMPLING[method]) for frame in frames])


def make_upscaler(
    method: str,
    scale: int,
    *,
    model: str | object = None,
    sr_model: str | Path | None = None,
    allow_pickle: bool = False,
    device: str | None = None,
    seed: int = 0,
    steps: int | None = None,
    noise_aug_strength: float | None = None,
    tile: int | None = None,
    stabilise: float = 0.0,
    temperature: float | None = None,
) -> Upscaler:
    """An Upscaler, its method's model loaded and every setting checked before any work."""
    if method not in UPSCALE_METHODS:
        raise InvalidParameterError(
            f"upscale method={method!r} is not allowed: choose one of {', '.join(UPSCALE_METHODS)}"
        )
    if scale not in (2, 4):
        raise InvalidParameterError(f"scale={scale} is not allowed: choose 2 or 4")
    if tile is not None and tile < 16:
        raise InvalidParameterError(f"tile={tile} is not allowed: use 16 px or more, or leave it unset")
    if not 0.0 <= stabilise <= 0.9:
        raise InvalidParameterError(f"stabilise={stabilise} is not allowed: use 0 (off) up to 0.9")
    if temperature is not None and not 0.0 <= temperature <= 1.0:
        raise InvalidParameterError(
            f"temperature={temperature} is not allowed: use 0 (the mean, the same for every seed) up to 1"
        )
    if stabilise and method != "sr":
        raise InvalidParameterError(
            f"--stabilise steadies per-frame super-resolution (--method sr), not {method}: drop it"
        )
    if sr_model is not None and method != "sr":
        raise InvalidParameterError(
            f"--sr-model is for --method sr; drop it or use --method sr (not {method})"
        )
    upscaler = Upscaler(
        method, scale, None, None, seed, steps, noise_aug_strength, tile, stabilise, temperature
    )
    if method == "model":
        from svdlab.models.upscaler import load_upscaler

        loaded = model if hasattr(model, "unet") else load_upscaler(model or "demo-upscaler", device=device)
        if loaded.preset.scale != scale:
            raise InvalidParameterError(
                f"{loaded.name} is a {loaded.preset.scale}x upscaler: use --scale {loaded.preset.scale}, or "
                "--method sr / lanczos for other scales"
            )
        upscaler.model = loaded
    if method == "sr":
        if sr_model is None:
            raise InvalidParameterError(
                "--method sr needs --sr-model FILE: a super-resolution model spandrel knows (ESRGAN, "
                "Real-ESRGAN, SwinIR, HAT, ...), as .safetensors"
            )
        from svdlab.post.sr_model import check_scale, load_sr_model

        upscaler.sr = load_sr_model(sr_model, allow_pickle=allow_pickle, device=device)
        check_scale(upscaler.sr, scale)
    return upscaler


def check_upscalable(upscaler: Upscaler, height: int, width: int, what: str) -> None:
    """Refuse frames the learned upscaler's downsampling cannot take."""
    if upscaler.method != "model":
        return
    multiple = upscaler.model.size_multiple // upscaler.scale
    if height % multiple or width % multiple:
        raise InvalidVideoError(
            f"{what} is {width}x{height}; {upscaler.model.name} takes sides that are multiples of "
            f"{multiple}: crop or pad it, or use --method lanczos"
        )


def upscale_video(
    source: str | Path,
    upscaler: Upscaler,
    out: str | Path = "outputs",
    format: str = "mp4",
    overwrite: bool = False,
):
    """Upscale a video file into `out`, with a manifest naming the method, its weights and the input."""
    from svdlab.post.outputs import input_info, post_target, write_post_video

    source = Path(source)
    frames, fps = read_video(source)
    height, width = frames.shape[1:3]
    check_upscalable(upscaler, height, width, str(source))
    made_from = input_info(source, frames, fps)
    made_by = {"operation": "upscale", **upscaler.describe(height, width)}
    target = post_target(source, f"x{upscaler.scale}-{upscaler.method}", out, format, made_from, overwrite)
    started = time.perf_counter()
    made = upscaler(frames)
    made_by["seconds"] = round(time.perf_counter() - started, 3)
    return write_post_video(made, fps, format, target, made_by, made_from)
