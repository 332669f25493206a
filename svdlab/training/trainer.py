"""svdlab train: stages of EDM training (VAE, image, video, temporal) on a clip dataset with AdamW, EMA,
gradient accumulation, mixed precision and checkpoints that resume exactly, through accelerate."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import statistics
import threading
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs
from diffusers.training_utils import EMAModel

from svdlab.engine.conditioning import vae_latents
from svdlab.errors import InvalidParameterError, RunInterruptedError
from svdlab.progress import training_progress
from svdlab.training.batches import TrainingData, added_time_ids, step_generator
from svdlab.training.checkpoint import check_resumable, latest_checkpoint, save_checkpoint
from svdlab.training.config import StageSection, TrainConfig, load_train_config, resolve_path
from svdlab.training.context import context_condition, draw_patterns, pattern_masks
from svdlab.training.dataset import ClipDataset
from svdlab.training.log import TrainingLog
from svdlab.training.lora import add_lora, save_lora
from svdlab.training.networks import build_model, stage_parameters
from svdlab.training.objective import denoised_estimate, denoising_loss, draw
from svdlab.training.vae import AutoencoderObjective, latent_scaling_factor, posterior_noise_shape
from svdlab.training.validation import validate, validation_images

MODEL_FOLDER = "model"
LORA_FILE = "lora.safetensors"


@dataclass
class TrainResult:
    """What a call to train did: the run folder, the step reached, what it wrote and its losses (and, on
    the main process, its validation reports); `finished_before` when the run was already complete."""

    run_dir: Path
    step: int
    output: Path
    losses: list[float] = field(default_factory=list)
    reports: list[Path] = field(default_factory=list)
    main_process: bool = True
    finished_before: bool = False  # the run had already trained every step: nothing was done


def train(
    config_path: str | Path,
    *,
    fresh: bool = False,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train (or resume training) as the config says; returns where the result went."""
    config_path = Path(config_path)
    trainer = trainer_for(load_train_config(config_path), config_path, fresh=fresh)
    return trainer.run(progress=progress, on_step=on_step)


def trainer_for(config: TrainConfig, config_path: Path, fresh: bool = False) -> Trainer:
    """The trainer of the config's task: the upscale task's own, or the SVD trainer."""
    from svdlab.training.upscale import UpscaleTrainer

    return (UpscaleTrainer if config.task == "upscale" else Trainer)(config, config_path, fresh=fresh)


def fingerprint(config: TrainConfig) -> str:
    """A hash of what a checkpoint must agree with to be resumed: model, data, seed, objective, LoRA, EMA."""
    parts = config.model_dump(include={"model", "data", "seed", "objective", "lora", "ema_decay"})
    if config.task != "image-to-video":  # runs from before tasks existed keep their fingerprint
        task_section = "upscale" if config.task == "upscale" else "context"
        parts.update(config.model_dump(include={"task", task_section}))
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


class Trainer:
    """One training run: the model, its data, EMA, the current stage's optimizer and the step counter."""

    def __init__(self, config: TrainConfig, config_path: Path, fresh: bool = False):
        self.config, self.config_path = config, config_path
        self.run_dir = Path(config.output) / config.name
        if fresh:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # find_unused_parameters: some layers never reach a stage's loss (with one layer per block,
        # diffusers' temporal decoder skips its mid-block attention), which plain DDP refuses on step 2
        self.accelerator = Accelerator(
            mixed_precision=config.mixed_precision,
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        )
        self.dataset = ClipDataset(resolve_path(config_path, config.data.dataset))
        self.model = self._build_model()
        self.model.source, self.model.location = "training", str(self.run_dir)
        self.model.weights_changed()
        self._check_shapes()
        self._set_preset()
        if config.lora is not None:
            add_lora(
                self.model.unet, rank=config.lora.rank, alpha=config.lora.alpha, targets=config.lora.targets
            )
        if config.gradient_checkpointing:
            for network in self._networks():
                if hasattr(network, "enable_gradient_checkpointing"):
                    network.enable_gradient_checkpointing()
        self._place()
        self.ema = EMAModel(self._ema_parameters(), decay=config.ema_decay) if config.ema_decay > 0 else None
        self.data = TrainingData(self.dataset, config.seed, config.cache_latents)
        self.step = 0
        self.stage_index: int | None = None
        self.trained: torch.nn.Module | None = None
        self.optimizer = None
        self.parameters: list[torch.nn.Parameter] = []
        self.saved_optimizer: dict | None = None
        self.saved_step = 0

    def _build_model(self):
        """The model this run trains, as the [model] section names it (widened for the context task)."""
        return build_model(
            self.config.model,
            lambda value: resolve_path(self.config_path, value),
            self.config.seed,
            context=self.config.task == "context",
        )

    def _networks(self) -> tuple[torch.nn.Module, ...]:
        """The model's networks: the UNet, the VAE and the image encoder."""
        return self.model.unet, self.model.vae, self.model.image_encoder

    def _check_shapes(self) -> None:
        """The dataset's frame size and clip length suit the model and every stage."""
        multiple = self.model.size_multiple
        if self.dataset.width % multiple or self.dataset.height % multiple:
            raise InvalidParameterError(
                f"the dataset's clips are {self.dataset.width}x{self.dataset.height}, but this model needs "
                f"multiples of {multiple}; prepare the data again with a --size of such multiples"
            )
        for stage in self.config.stages:
            if stage.frames is not None and stage.frames > self.dataset.frames:
                raise InvalidParameterError(
                    f"a {stage.kind} stage asks for {stage.frames} frames but the dataset's clips have "
                    f"{self.dataset.frames}; lower frames or prepare longer clips"
                )

    def _set_preset(self) -> None:
        """The trained model's defaults: the dataset's size, clip length and typical fps."""
        fps = [int(record["fps"]) for record in self.dataset.records] or [self.model.preset.fps]
        self.model.preset = replace(
            self.model.preset,
            name=self.config.name,
            description=f"trained by svdlab train ({self.config.name})",
            repo_id=None,
            num_frames=self.dataset.frames,
            width=self.dataset.width,
            height=self.dataset.height,
            fps=int(statistics.median(fps)),
            trained_spec=False,
            context=self.config.task == "context",
        )

    def _place(self) -> None:
        """Put the networks on the accelerator's device in float32 (autocast does mixed precision)."""
        device = self.accelerator.device
        for network in self._networks():
            network.to(device).requires_grad_(False)
        self.model.device, self.model.dtype = device, torch.float32

    def _ema_parameters(self) -> list[torch.nn.Parameter]:
        """What EMA averages: the LoRA parameters in a LoRA run, else the whole UNet."""
        parameters = list(self.model.unet.parameters())
        if self.config.lora is None:
            return parameters
        return [p for name, p in self.model.unet.named_parameters() if "lora_" in name]

    def resume(self) -> None:
        """Load the newest checkpoint of the run folder, if there is one."""
        checkpoint = latest_checkpoint(self.run_dir)
        if checkpoint is None:
            return
        check_resumable(checkpoint, fingerprint(self.config), self.config_path)
        self._restore_networks(checkpoint)
        if self.ema is not None:
            self.ema.load_state_dict(checkpoint.load_object("ema"))
            self.ema.to(self.accelerator.device)
        self.step = self.saved_step = checkpoint.step
        if (
            self.step < self.config.total_steps
            and self.config.stage_at(self.step)[0] == checkpoint.state["stage"]
        ):
            self.saved_optimizer = checkpoint.load_object("optimizer")
            scaler = checkpoint.load_object("scaler")
            if scaler is not None and self.accelerator.scaler is not None:
                self.accelerator.scaler.load_state_dict(scaler)

    def _restore_networks(self, checkpoint) -> None:
        """Load a checkpoint's networks: the UNet, and the VAE with its latent scale."""
        checkpoint.load_network("unet", self.model.unet)
        if (checkpoint.folder / "vae.safetensors").is_file():
            checkpoint.load_network("vae", self.model.vae)
        self.model.vae.register_to_config(scaling_factor=checkpoint.state["vae_scaling_factor"])

    def run(self, progress: bool = True, on_step: Callable[[int, float], None] | None = None) -> TrainResult:
        """Train from the last checkpoint to the end; save the result; validate as configured."""
        self.resume()
        config, accelerator = self.config, self.accelerator
        target = self.output_path
        if self.step >= config.total_steps and target.exists():
            return TrainResult(
                self.run_dir,
                self.step,
                target,
                main_process=accelerator.is_main_process,
                finished_before=True,
            )
        log = TrainingLog(
            self.run_dir, config.name, config.model_dump(), config.trackers.wandb, accelerator.is_main_process
        )
        validation = config.validation
        images = validation_images(config, self.config_path, self.dataset, self.run_dir) if validation else []
        result = TrainResult(self.run_dir, self.step, self.run_dir, main_process=accelerator.is_main_process)
        show = progress and accelerator.is_main_process
        try:
            with training_progress(config.total_steps, self.step, show) as bar, _StopBetweenSteps() as stop:
                while self.step < config.total_steps:
                    loss = self._train_one(result, bar, log, images)
                    if on_step is not None:
                        on_step(self.step, loss)
                    if stop.requested:
                        raise KeyboardInterrupt
            if validation and result.losses and (not validation.every or self.step % validation.every):
                self._validate(images, log, result)  # at the end, unless the last step just did
            result.step, result.output = self.step, self._write_result()
        except KeyboardInterrupt:
            if self.step > self.saved_step:
                self._save()
            raise RunInterruptedError(
                f"interrupted after step {self.step} of {config.total_steps}; its checkpoint is in "
                f"{self.run_dir / 'checkpoints'}; run the same command again to resume"
            ) from None
        finally:
            log.close()
        return result

    def _train_one(self, result: TrainResult, bar, log: TrainingLog, images: list[str]) -> float:
        """One optimizer step, then its logging, stage end, checkpoint and validation as due."""
        config = self.config
        index, stage, local = config.stage_at(self.step)
        if index != self.stage_index:
            self._enter_stage(index)
        loss = self._optimizer_step(stage, local)
        self.step += 1
        result.losses.append(loss)
        bar.step(stage.kind, loss)
        if self.step % config.log_every == 0 or self.step == config.total_steps:
            log.log(self.step, {"loss": loss, "stage": stage.kind, "lr": self._lr(stage, local)})
        if local + 1 == stage.steps:
            self._finish_stage(stage)
        if self.step % config.checkpoint_every == 0 or local + 1 == stage.steps:
            self._save()
        if config.validation and config.validation.every and self.step % config.validation.every == 0:
            self._validate(images, log, result)
        return loss

    def _enter_stage(self, index: int) -> None:
        """Choose the stage's trainable parameters and give them a fresh (or restored) AdamW."""
        stage, accelerator = self.config.stages[index], self.accelerator
        if self.trained is not None:
            accelerator.unwrap_model(self.trained, keep_fp32_wrapper=False)
            accelerator.free_memory()
        if stage.trains_autoencoder:
            self.model.unet.requires_grad_(False)
            vae = self.model.vae
            part = vae if stage.kind == "vae" else vae.decoder
            vae.requires_grad_(False)
            network = AutoencoderObjective(vae, self.config.objective.vae_kl_weight, stage.temporal_weight)
            parameters = list(part.requires_grad_(True).parameters())
            if stage.kind == "vae":  # only this kind changes the encoder, and so the cached latents
                self.data.forget()
        else:
            for frozen in self._networks()[1:]:
                frozen.requires_grad_(False).eval()
            network = self.model.unet
            parameters = stage_parameters(network, stage.kind, lora=self.config.lora is not None)
        settings = self.config.optimizer
        optimizer = torch.optim.AdamW(
            parameters,
            lr=stage.learning_rate,
            betas=settings.betas,
            eps=settings.eps,
            weight_decay=settings.weight_decay,
        )
        if self.saved_optimizer is not None:
            optimizer.load_state_dict(self.saved_optimizer)
            self.saved_optimizer = None
        network.train()
        self.trained, self.optimizer = accelerator.prepare(network, optimizer)
        self.parameters = parameters
        self.stage_index = index

    def _lr(self, stage: StageSection, local: int) -> float:
        """The stage's learning rate after linear warmup."""
        return (
            stage.learning_rate * min(1.0, (local + 1) / stage.warmup_steps)
            if stage.warmup_steps
            else stage.learning_rate
        )

    def _optimizer_step(self, stage: StageSection, local: int) -> float:
        """One optimizer step over `gradient_accumulation` micro-batches; returns the mean loss."""
        accelerator, accumulation = self.accelerator, self.config.gradient_accumulation
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr(stage, local)
        total = 0.0
        for micro in range(accumulation):
            number = (
                self.step * accumulation + micro
            ) * accelerator.num_processes + accelerator.process_index
            indices = self.data.indices(number, stage.batch_size)
            generator = step_generator(self.config.seed, self.step, micro, accelerator.process_index)
            last = micro == accumulation - 1
            with nullcontext() if last else accelerator.no_sync(self.trained):
                with accelerator.autocast():
                    loss = self._loss(self.trained, stage, indices, generator)
                accelerator.backward(loss / accumulation)
            total += loss.detach().float() / accumulation
        if self.config.optimizer.max_grad_norm is not None:
            accelerator.clip_grad_norm_(self.parameters, self.config.optimizer.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None and not stage.trains_autoencoder:
            self.ema.step(self._ema_parameters())
        return float(accelerator.reduce(total.to(accelerator.device), reduction="mean"))

    def _loss(
        self, network: torch.nn.Module, stage: StageSection, indices: list[int], generator: torch.Generator
    ) -> torch.Tensor:
        """The stage's loss for `network` on the clips `indices` with this micro-batch's random draws."""
        device, objective = self.accelerator.device, self.config.objective
        frames = 1 if stage.kind == "image" else stage.frames or self.dataset.frames
        if stage.trains_autoencoder:
            clips = self.data.clip_pixels(indices, frames)
            eps = torch.randn(posterior_noise_shape(self.model, tuple(clips.shape)), generator=generator)
            return network(clips.to(device), eps)
        batch = self.data.batch(self.model, indices, frames)
        draws = draw(
            generator,
            tuple(batch.latents.shape),
            tuple(batch.cond_pixels.shape),
            objective.p_mean,
            objective.p_std,
            objective.cond_noise_mean,
            objective.cond_noise_std,
            objective.cond_dropout,
        )
        if self.config.task == "context":
            masks = pattern_masks(
                draw_patterns(generator, self.config.context.patterns, len(indices)), frames
            )
            noise = torch.randn((*batch.latents.shape[:2], *batch.cond_pixels.shape[1:]), generator=generator)
            pixels = self.data.clip_pixels(indices, frames)
            condition = context_condition(self.model, pixels, masks, draws.cond_strengths, noise).to(device)
            keep = masks.any(dim=1).to(device, torch.float32)
        else:
            strengths = draws.cond_strengths.view(-1, 1, 1, 1)
            cond_latents = (
                vae_latents(self.model, batch.cond_pixels + strengths * draws.cond_noise).float().clone()
            )
            keep = draws.keep_condition.to(device, torch.float32)
            condition = cond_latents * keep.view(-1, 1, 1, 1)
        latents, sigmas = batch.latents.to(device), draws.sigmas.to(device)
        denoised = denoised_estimate(
            network,
            latents,
            condition,
            batch.embeddings.to(device) * keep.view(-1, 1, 1),
            added_time_ids(batch, draws.cond_strengths).to(device),
            sigmas,
            draws.noise.to(device),
        )
        return denoising_loss(denoised, latents, sigmas).mean()

    @torch.no_grad()
    def loss_on(self, indices: list[int], kind: str = "video", seed: int = 0) -> float:
        """The loss of a stage kind on given clips with draws fixed by `seed`, without training."""
        stage = StageSection(kind=kind, steps=1, batch_size=len(indices))
        network = self.model.unet
        if stage.trains_autoencoder:
            network = AutoencoderObjective(self.model.vae, self.config.objective.vae_kl_weight)
        return float(self._loss(network, stage, indices, step_generator(seed, -1)))

    def _finish_stage(self, stage: StageSection) -> None:
        """After a VAE stage of a model trained from scratch, rescale latents to unit variance."""
        if stage.kind == "vae" and self.config.model.architecture is not None:
            pixels = self.data.clip_pixels(list(range(min(len(self.dataset), 64))), self.dataset.frames)
            self.model.vae.eval()
            self.model.vae.register_to_config(scaling_factor=latent_scaling_factor(self.model, pixels))
            self.data.forget()

    def _save(self) -> None:
        """A checkpoint of everything needed to go on from this step."""
        accelerator = self.accelerator
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            networks = {"unet": self.model.unet}
            if any(stage.trains_autoencoder for stage in self.config.stages):
                networks["vae"] = self.model.vae
            objects = {
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "optimizer": self.optimizer.state_dict(),
                "scaler": accelerator.scaler.state_dict() if accelerator.scaler is not None else None,
            }
            state = {"fingerprint": fingerprint(self.config), "stage": self.stage_index, **self._scales()}
            save_checkpoint(self.run_dir, self.step, state, networks, objects, self.config.keep_checkpoints)
        self.saved_step = self.step

    def _scales(self) -> dict:
        """What a checkpoint keeps beside the weights: the VAE's latent scale."""
        return {"vae_scaling_factor": float(self.model.vae.config.scaling_factor)}

    def _with_ema(self):
        """A context in which the UNet holds the EMA weights (restored after)."""
        ema, parameters = self.ema, self._ema_parameters()
        if ema is None:
            return nullcontext()
        return _Swapped(ema, parameters)

    def _validate(self, images: list[str], log: TrainingLog, result: TrainResult) -> None:
        """Render and measure the validation sweep with the EMA weights (main process only)."""
        if self.accelerator.is_main_process:
            self.model.unet.eval()
            with self._with_ema():
                report = validate(self.config, self.model, images, self.run_dir, self.step, self.dataset)
            self.model.unet.train()
            log.log(self.step, {"validation_report": str(report)})
            result.reports.append(report)
        self.accelerator.wait_for_everyone()

    @property
    def output_path(self) -> Path:
        """Where the result goes: the model folder, or the LoRA file of a LoRA run."""
        return self.run_dir / (LORA_FILE if self.config.lora is not None else MODEL_FOLDER)

    def _write_result(self) -> Path:
        """The trained model folder (EMA weights), or the LoRA file of a LoRA run."""
        target = self.output_path
        if self.accelerator.is_main_process:
            for network in self._networks():
                network.eval()
            with self._with_ema():
                if self.config.lora is not None:
                    save_lora(self.model.unet, target)
                else:
                    self.model.save_pretrained(target)
        self.accelerator.wait_for_everyone()
        return target


class _StopBetweenSteps:
    """Turn the first Ctrl-C or SIGTERM into a request that the loop honours after the step in flight, so
    that no checkpoint holds a half-applied update; a second one interrupts at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self.previous: dict = {}

    def _request(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _StopBetweenSteps:
        if threading.current_thread() is threading.main_thread():
            self.previous = {number: signal.signal(number, self._request) for number in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)


class _Swapped:
    """Swap EMA weights into parameters for the duration of a with block."""

    def __init__(self, ema: EMAModel, parameters: list[torch.nn.Parameter]):
        self.ema, self.parameters = ema, parameters

    def __enter__(self):
        self.ema.store(self.parameters)
        self.ema.copy_to(self.parameters)

    def __exit__(self, *exc):
        self.ema.restore(self.parameters)
