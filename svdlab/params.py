"""Generation parameters: validated at parse time, completed from the model's preset."""

from __future__ import annotations

import warnings
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from svdlab.errors import InvalidParameterError, SvdlabWarning

FitMode = Literal["crop", "pad", "stretch"]
SamplerName = Literal["euler", "heun", "dpmpp_2m", "euler_ancestral"]
ScheduleName = Literal["karras", "exponential"]
UpscaleMethod = Literal["model", "sr", "bicubic", "lanczos"]
LATER_DEFAULTS = {  # settings added after job keys existed: left out of keys while at these defaults
    "sampler": "euler",
    "schedule": "karras",
    "guidance_interval": None,
    "cache_interval": 1,
    "loop": False,
    "interpolate": "none",
    "interpolate_factor": 2,
    "upscale": 1,
    "upscale_method": "model",
    "upscale_model": None,
    "sr_model": None,
}
TRAINED_MAX_BUCKET = 255
TRAINED_MAX_NOISE = 0.15
TRAINED_FPS = (5, 30)


class GenerationParams(BaseModel):
    """Every setting of one video; None means the model's default. `interpolate` (with its factor), then
    `upscale` (1: not; with its method, learned upscaler or super-resolution file) run on the finished
    frames, so that a sweep can vary them too."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    motion_bucket_id: int | None = Field(None, ge=0, le=100_000)
    noise_aug_strength: float | None = Field(None, ge=0.0, le=10.0)
    fps: int | None = Field(None, ge=1, le=240)
    num_frames: int | None = Field(None, ge=1, le=512)
    steps: int | None = Field(None, ge=1, le=1000)
    min_guidance: float | None = Field(None, ge=0.0, le=100.0)
    max_guidance: float | None = Field(None, ge=0.0, le=100.0)
    seed: int = Field(42, ge=0, lt=2**63)
    width: int | None = Field(None, ge=1, le=8192)
    height: int | None = Field(None, ge=1, le=8192)
    fit: FitMode = "crop"
    decode_chunk_size: int | None = Field(None, ge=1)
    sampler: SamplerName = "euler"
    schedule: ScheduleName = "karras"
    guidance_interval: tuple[int, int] | None = None
    cache_interval: int = Field(1, ge=1, le=1000)
    loop: bool = False
    interpolate: Literal["none", "flow", "blend", "model"] = "none"
    interpolate_factor: Literal[2, 4] = 2
    upscale: Literal[1, 2, 4] = 1
    upscale_method: UpscaleMethod = "model"
    upscale_model: str | None = None
    sr_model: str | None = None

    @field_validator("guidance_interval", mode="before")
    @classmethod
    def _interval_from_text(cls, value):
        return parse_interval(value) if isinstance(value, str) else value

    @field_validator("guidance_interval")
    @classmethod
    def _interval_in_order(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not 0 <= value[0] < value[1]:
            raise InvalidParameterError(
                f"guidance_interval={value[0]}:{value[1]} is not allowed: "
                "use START:END with 0 <= START < END, e.g. 0:10 for the first ten steps"
            )
        return value

    def resolved(self, model) -> GenerationParams:
        """These parameters with the model's defaults filled in, checked against what the model can take."""
        preset = model.preset
        defaults = {
            "motion_bucket_id": preset.motion_bucket_id,
            "noise_aug_strength": preset.noise_aug_strength,
            "fps": preset.fps,
            "num_frames": preset.num_frames,
            "steps": preset.steps,
            "min_guidance": preset.min_guidance,
            "max_guidance": preset.max_guidance,
            "width": preset.width,
            "height": preset.height,
        }
        values = self.model_dump()
        for key, default in defaults.items():
            if values[key] is None:
                values[key] = default
        if values["decode_chunk_size"] is None:
            values["decode_chunk_size"] = values["num_frames"]
        params = GenerationParams(**values)
        params.check_size(model.size_multiple)
        params.check_loop()
        params.check_guidance_interval()
        params.warn_outside_training(preset)
        return params

    def check_size(self, multiple: int) -> None:
        """Refuse a width or height the model's down-sampling cannot take."""
        for name in ("width", "height"):
            value = getattr(self, name)
            if value % multiple:
                lower = max(multiple, value - value % multiple)
                raise InvalidParameterError(
                    f"{name}={value} is not a multiple of {multiple}, which this model needs; "
                    f"try {lower} or {lower + multiple}"
                )

    def check_loop(self) -> None:
        """Refuse a loop too short to hold a frame between its first frame and the same again."""
        if self.loop and self.num_frames < 3:
            raise InvalidParameterError(
                f"loop needs num_frames of 3 or more (its last frame is its first); got {self.num_frames}"
            )

    def check_guidance_interval(self) -> None:
        """Refuse a guidance interval that reaches past the last step."""
        if self.guidance_interval is not None and self.guidance_interval[1] > self.steps:
            start, end = self.guidance_interval
            raise InvalidParameterError(
                f"guidance_interval={start}:{end} reaches past the {self.steps} steps; "
                f"use START:END with 0 <= START < END <= {self.steps}"
            )

    def warn_outside_training(self, preset) -> None:
        """Warn (and run) where a value lies outside what the real SVD models were trained on."""
        low_fps, high_fps = TRAINED_FPS
        checks = [
            (
                self.motion_bucket_id > TRAINED_MAX_BUCKET,
                f"motion_bucket_id={self.motion_bucket_id} is above {TRAINED_MAX_BUCKET}",
            ),
            (
                self.noise_aug_strength > TRAINED_MAX_NOISE,
                f"noise_aug_strength={self.noise_aug_strength} is above {TRAINED_MAX_NOISE}",
            ),
            (not low_fps <= self.fps <= high_fps, f"fps={self.fps} is outside {low_fps}..{high_fps}"),
        ]
        for outside, what in checks:
            if outside:
                _warn(f"{what}, the training range; it runs but extrapolates")
        if preset.trained_spec and (self.width, self.height) != (preset.width, preset.height):
            _warn(
                f"size {self.width}x{self.height} differs from {preset.width}x{preset.height}, "
                f"the size {preset.name} was trained at; quality may drop"
            )


def params_identity(values: dict) -> dict:
    """Parameter values less the later settings left at (or missing for) their defaults, so that job
    keys and settings hashes made before those settings existed stay the same."""
    return {
        key: value
        for key, value in values.items()
        if key not in LATER_DEFAULTS or value != LATER_DEFAULTS[key]
    }


def _warn(message: str) -> None:
    warnings.warn(message, SvdlabWarning, stacklevel=3)


def make_params(**values) -> GenerationParams:
    """GenerationParams from keyword values; a bad value raises InvalidParameterError naming the field."""
    try:
        return GenerationParams(**{key: value for key, value in values.items() if value is not None})
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "parameters"
        value = first.get("input")
        raise InvalidParameterError(f"{field}={value!r} is not allowed: {first['msg'].lower()}") from error


def parse_interval(text: str) -> tuple[int, int]:
    """(start, end) from 'START:END', a range of 0-based steps with END excluded, as in a Python slice."""
    return parse_pair(
        text, int, f"guidance_interval={text!r} is not START:END in steps, e.g. 0:10 for the first ten steps"
    )


def parse_pair(text: str, kind: type, complaint: str) -> tuple:
    """Two values of `kind` from 'A:B'; InvalidParameterError(complaint) if the text is not that."""
    try:
        first, second = (kind(part) for part in text.split(":"))
    except ValueError as error:
        raise InvalidParameterError(complaint) from error
    return first, second


def parse_size(text: str) -> tuple[int, int]:
    """(width, height) from 'WxH'."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError as error:
        raise InvalidParameterError(f"size={text!r} is not WIDTHxHEIGHT, e.g. 1024x576") from error
    if width <= 0 or height <= 0:
        raise InvalidParameterError(f"size={text!r} must have positive width and height, e.g. 1024x576")
    return width, height
