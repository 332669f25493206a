"""Training configs: a TOML file naming the model to start from, the dataset, the stages and the objective."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from svdlab.experiments.spec import TrackersSpec, params_from
from svdlab.tomlconfig import load_toml

ContextPattern = Literal["none", "first", "first_two", "first_last", "every_2", "every_4"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ModelSection(_Section):
    """Where the weights start: a checkpoint to fine-tune, or an architecture trained from scratch; a
    checkpoint with [model.unet] overrides keeps its autoencoder and image encoder under a fresh UNet."""

    checkpoint: str | None = None
    architecture: str | None = None
    unet: dict[str, Any] = Field(default_factory=dict)
    vae: dict[str, Any] = Field(default_factory=dict)
    image_encoder: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source(self) -> ModelSection:
        if (self.checkpoint is None) == (self.architecture is None):
            raise ValueError("set exactly one of checkpoint (fine-tune) or architecture (from scratch)")
        if self.checkpoint is not None and (self.vae or self.image_encoder):
            raise ValueError(
                "[model.vae] and [model.image_encoder] apply only to architecture; with a checkpoint, only"
                " [model.unet] may be given (a fresh UNet on the checkpoint's trained autoencoder)"
            )
        return self


class DataSection(_Section):
    """The dataset `svdlab prepare-data` wrote."""

    dataset: str


class StageSection(_Section):
    """One training stage: what it trains, for how many optimizer steps, at what batch size and rate."""

    kind: Literal["vae", "decoder", "image", "video", "temporal"]
    steps: int = Field(ge=1)
    batch_size: int = Field(default=8, ge=1)
    learning_rate: float = Field(default=1e-4, gt=0)
    warmup_steps: int = Field(default=0, ge=0)
    frames: int | None = Field(default=None, ge=1)
    temporal_weight: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _temporal_weight_for_autoencoder(self) -> StageSection:
        if self.temporal_weight and not self.trains_autoencoder:
            raise ValueError(
                f"temporal_weight weighs the decoder's frame-to-frame error: remove it from the {self.kind}"
                " stage, or use it on a vae or decoder stage"
            )
        return self

    @property
    def trains_autoencoder(self) -> bool:
        """Whether the stage trains the VAE (all of it, or its decoder) rather than the UNet."""
        return self.kind in ("vae", "decoder")


class OptimizerSection(_Section):
    """AdamW settings shared by the stages."""

    weight_decay: float = Field(default=0.01, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    max_grad_norm: float | None = Field(default=1.0, gt=0)


class ObjectiveSection(_Section):
    """The SVD training objective: EDM noise levels, conditioning augmentation and dropout."""

    p_mean: float = 0.7
    p_std: float = 1.6
    cond_noise_mean: float = -3.0
    cond_noise_std: float = Field(default=0.5, ge=0)
    cond_dropout: float = Field(default=0.1, ge=0, le=1)
    vae_kl_weight: float = Field(default=1e-6, ge=0)


class ContextSection(_Section):
    """The context task: for each clip, the chance of each pattern of given frames (none, first,
    first_two, first_last, every_2, every_4); they need not sum to 1. `none` is the unconditional case that
    classifier-free guidance needs, so the objective's cond_dropout does not apply."""

    patterns: dict[ContextPattern, float] = Field(
        default_factory=lambda: {
            "none": 0.1,
            "first": 0.25,
            "first_two": 0.2,
            "first_last": 0.15,
            "every_2": 0.15,
            "every_4": 0.15,
        }
    )

    @model_validator(mode="after")
    def _some_chance(self) -> ContextSection:
        if any(value < 0 for value in self.patterns.values()) or sum(self.patterns.values()) <= 0:
            raise ValueError("pattern chances must be >= 0 and not all 0")
        return self


class UpscaleSection(_Section):
    """The upscale task: the scale the upscaler learns (high-resolution clips are shrunk by it, with area
    averaging, for its input), the side of the square high-resolution crops it trains on, the
    space-to-depth patch its UNet works in, the factor its residual target is scaled by (to about unit
    variance, as EDM's preconditioning assumes: the sprite data's residuals have a std of about 0.04) and
    the weight of the temporal-consistency term (svdlab.training.motion; 0: the denoising loss alone)."""

    scale: Literal[2, 4] = 2
    crop: int = Field(default=64, ge=16)
    patch: Literal[1, 2, 4, 8] = 4
    residual_scale: float = Field(default=20.0, gt=0)
    temporal_weight: float = Field(default=0.0, ge=0)


class LoraSection(_Section):
    """Train a LoRA on the UNet's attention instead of its own weights."""

    rank: int = Field(default=8, ge=1)
    alpha: float | None = Field(default=None, gt=0)
    targets: Literal["spatial", "temporal", "both"] = "both"


class ValidationSection(_Section):
    """A small sweep rendered with the EMA weights at the end of training, and every `every` steps when that
    is set (0, the default: at the end only)."""

    every: int = Field(default=0, ge=0)
    images: list[str] = Field(default_factory=list)
    count: int = Field(default=2, ge=1)
    grid: dict[str, list[Any]] = Field(default_factory=lambda: {"motion_bucket_id": [20, 120, 240]})
    fixed: dict[str, Any] = Field(default_factory=dict)
    batch_size: int = Field(default=4, ge=1)


class TrainConfig(_Section):
    """Everything one training run needs; input paths are relative to the config file, `output` to the
    working directory."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100)
    output: str = "runs/train"
    seed: int = 0
    task: Literal["image-to-video", "context", "upscale"] = "image-to-video"
    context: ContextSection = Field(default_factory=ContextSection)
    upscale: UpscaleSection = Field(default_factory=UpscaleSection)
    model: ModelSection
    data: DataSection
    stages: list[StageSection] = Field(min_length=1)
    optimizer: OptimizerSection = Field(default_factory=OptimizerSection)
    objective: ObjectiveSection = Field(default_factory=ObjectiveSection)
    lora: LoraSection | None = None
    ema_decay: float = Field(default=0.999, ge=0, lt=1)
    gradient_checkpointing: bool = False
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    gradient_accumulation: int = Field(default=1, ge=1)
    cache_latents: bool = True
    checkpoint_every: int = Field(default=500, ge=1)
    keep_checkpoints: int = Field(default=2, ge=1)
    log_every: int = Field(default=10, ge=1)
    validation: ValidationSection | None = None  # no [validation] section: no validation
    trackers: TrackersSpec = Field(default_factory=TrackersSpec)

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.task == "context" and self.lora is not None:
            raise ValueError(
                "the context task widens the UNet's input convolution, which a LoRA does not train: "
                "remove the [lora] section"
            )
        if self.task == "upscale":
            self._check_upscale()
        if self.lora is not None and any(stage.trains_autoencoder for stage in self.stages):
            raise ValueError(
                "a LoRA run trains the UNet only: remove the vae and decoder stages or the [lora] section"
            )
        if self.validation is not None:
            for key, values in self.validation.grid.items():
                for value in values:
                    params_from(**{key: value})
            params_from(**self.validation.fixed)
        return self

    def _check_upscale(self) -> None:
        """The upscale task trains a whole pixel-space UNet: video stages, no LoRA, no validation sweep."""
        if self.lora is not None or self.validation is not None:
            raise ValueError(
                "the upscale task trains the whole upscaler and has no validation sweep: remove [lora] and "
                "[validation] (measure it with benchmarks/upscaling.py)"
            )
        if any(stage.kind != "video" for stage in self.stages):
            raise ValueError('the upscale task trains video stages only: set kind = "video"')
        if self.upscale.crop % (self.upscale.patch * 4):
            raise ValueError(
                f"upscale.crop={self.upscale.crop} must be a multiple of {self.upscale.patch * 4} "
                "(the patch times the UNet's downsampling)"
            )

    @property
    def total_steps(self) -> int:
        """Optimizer steps over all stages."""
        return sum(stage.steps for stage in self.stages)

    def stage_at(self, step: int) -> tuple[int, StageSection, int]:
        """The stage index, stage and step within it for a global step counted from 0."""
        for index, stage in enumerate(self.stages):
            if step < stage.steps:
                return index, stage, step
            step -= stage.steps
        raise IndexError(f"step beyond the last stage ({self.total_steps} steps)")


def load_train_config(path: str | Path) -> TrainConfig:
    """Read and validate a training config; a mistake raises InvalidParameterError naming the key."""
    return load_toml(path, TrainConfig, "training config")


def resolve_path(config_path: str | Path, value: str) -> Path:
    """A path from the config, relative to the config file's folder unless absolute."""
    path = Path(value)
    return path if path.is_absolute() else Path(config_path).parent / path
