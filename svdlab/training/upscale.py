"""The upscale task: a video upscaler (svdlab.models.upscaler) trained on square crops of high-resolution
clips, each shrunk by the scale with area averaging for its input, with SVD's EDM objective in pixel
space (space-to-depth cells), optionally plus a temporal-consistency term weighted like it
(svdlab.training.motion), and the same checkpoints, EMA and resume as every run."""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from svdlab.engine.upscaling import (
    empty_embeddings,
    from_cells,
    low_res_condition,
    residual_cells,
    upscaler_time_ids,
)
from svdlab.errors import InvalidParameterError
from svdlab.models.upscaler import (
    UpscalerModel,
    UpscalerPreset,
    fresh_upscaler_scheduler,
    fresh_upscaler_unet,
    load_upscaler,
)
from svdlab.training.config import StageSection, resolve_path
from svdlab.training.motion import error_change_along_motion, true_motion
from svdlab.training.objective import denoised_estimate, denoising_loss, draw, loss_weight
from svdlab.training.trainer import Trainer


def random_crops(clips: torch.Tensor, crop: int, step: int, generator: torch.Generator) -> torch.Tensor:
    """One crop x crop window per clip (B, T, 3, H, W), the same in all its frames, at offsets that are
    multiples of `step` (so that shrinking the crop equals cropping the shrunk clip)."""
    height, width = clips.shape[-2:]
    rows = torch.randint(0, (height - crop) // step + 1, (len(clips),), generator=generator) * step
    cols = torch.randint(0, (width - crop) // step + 1, (len(clips),), generator=generator) * step
    return torch.stack(
        [clip[..., top : top + crop, left : left + crop] for clip, top, left in zip(clips, rows, cols)]
    )


def shrink(clips: torch.Tensor, scale: int) -> torch.Tensor:
    """Clips (B, T, 3, H, W) shrunk by `scale` with area averaging."""
    batch, frames = clips.shape[:2]
    small = F.avg_pool2d(clips.flatten(0, 1), scale)
    return small.view(batch, frames, *small.shape[1:])


class UpscaleTrainer(Trainer):
    """A training run of the upscale task: one pixel-space UNet, no autoencoder or image encoder."""

    def _build_model(self) -> UpscalerModel:
        """A fresh upscaler (`architecture = "upscaler"`, with [model.unet] overrides) or one to fine-tune."""
        section, task = self.config.model, self.config.upscale
        if section.checkpoint is not None:
            source = section.checkpoint
            local = resolve_path(self.config_path, source)
            model = load_upscaler(str(local) if local.exists() else source, device="cpu", dtype="float32")
            if (model.preset.scale, model.preset.patch) != (task.scale, task.patch):
                raise InvalidParameterError(
                    f"{source} is a {model.preset.scale}x upscaler with patch {model.preset.patch}; set "
                    f"[upscale] scale = {model.preset.scale} and patch = {model.preset.patch}"
                )
            return model
        if section.architecture != "upscaler":
            raise InvalidParameterError(
                f'the upscale task trains architecture = "upscaler" (or a checkpoint of one), not '
                f"{section.architecture!r}"
            )
        with torch.random.fork_rng():
            torch.manual_seed(self.config.seed)
            unet = fresh_upscaler_unet(task.scale, task.patch, num_frames=self.dataset.frames, **section.unet)
        preset = UpscalerPreset(
            self.config.name, "", task.scale, patch=task.patch, residual_scale=task.residual_scale
        )
        return UpscalerModel(unet, fresh_upscaler_scheduler(), preset, "training", "")

    def _networks(self) -> tuple[torch.nn.Module, ...]:
        """The upscaler's one network."""
        return (self.model.unet,)

    def _check_shapes(self) -> None:
        """The clips are at least a crop in size and their sides suit the scale."""
        task, dataset = self.config.upscale, self.dataset
        if min(dataset.width, dataset.height) < task.crop or dataset.width % task.scale:
            raise InvalidParameterError(
                f"the dataset's clips are {dataset.width}x{dataset.height}: the upscale task needs clips of "
                f"at least its {task.crop}x{task.crop} crops, sides multiples of {task.scale}; prepare larger"
            )

    def _set_preset(self) -> None:
        """The trained upscaler's defaults: its name, scale and window length."""
        self.model.preset = replace(
            self.model.preset,
            name=self.config.name,
            description=f"video upscaler trained by svdlab train ({self.config.name})",
            num_frames=self.dataset.frames,
        )

    def _restore_networks(self, checkpoint) -> None:
        """Load a checkpoint's UNet."""
        checkpoint.load_network("unet", self.model.unet)

    def _scales(self) -> dict:
        """Nothing beside the weights: an upscaler has no latent scale."""
        return {}

    def _loss(
        self, network: torch.nn.Module, stage: StageSection, indices: list[int], generator: torch.Generator
    ) -> torch.Tensor:
        """The denoising loss of crops of the clips given their shrunk, noise-augmented copies, plus the
        temporal term of its error when `temporal_weight` is set and the clips have more than one frame."""
        device, objective, task = self.accelerator.device, self.config.objective, self.config.upscale
        frames = stage.frames or self.dataset.frames
        crops = random_crops(self.data.clip_pixels(indices, frames), task.crop, task.scale, generator)
        small = shrink(crops, task.scale)
        target = residual_cells(crops, small, task.patch, task.residual_scale)
        draws = draw(
            generator,
            tuple(target.shape),
            tuple(small.shape),
            objective.p_mean,
            objective.p_std,
            objective.cond_noise_mean,
            objective.cond_noise_std,
            0.0,
        )
        condition = low_res_condition(
            small, crops.shape[-2:], draws.cond_strengths, draws.cond_noise, task.patch
        )
        target, sigmas = target.to(device), draws.sigmas.to(device)
        denoised = denoised_estimate(
            network,
            target,
            condition.to(device),
            empty_embeddings(self.model.unet, len(indices)).to(device),
            upscaler_time_ids(draws.cond_strengths).to(device),
            sigmas,
            draws.noise.to(device),
        )
        losses = denoising_loss(denoised, target, sigmas)
        if task.temporal_weight and frames > 1:
            errors = from_cells(denoised - target, task.patch)
            change = error_change_along_motion(errors, true_motion(crops))
            losses = losses + task.temporal_weight * loss_weight(sigmas) * change
        return losses.mean()
