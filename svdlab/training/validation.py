"""Validation during training: a small sweep rendered through the engine with the current weights,
measured, stored and reported like any experiment (and logged to wandb when the config asks)."""

from __future__ import annotations

from pathlib import Path

import PIL.Image

from svdlab.experiments.report import write_report
from svdlab.experiments.runner import run_sweep, sweep_for_model
from svdlab.experiments.spec import SweepSpec
from svdlab.training.config import TrainConfig, resolve_path


def validation_images(config: TrainConfig, config_path: Path, dataset, run_dir: Path) -> list[str]:
    """The config's validation images, or else the first frames of `count` clips spread over the dataset,
    written once to the run folder."""
    if config.validation.images:
        return [str(resolve_path(config_path, image)) for image in config.validation.images]
    folder = run_dir / "validation-images"
    folder.mkdir(parents=True, exist_ok=True)
    count = min(config.validation.count, len(dataset))
    paths = []
    for index in range(count):
        clip = dataset[index * len(dataset) // count]
        path = folder / f"clip-{clip.id}.png"
        if not path.is_file():
            PIL.Image.fromarray(clip.frames[0]).save(path)
        paths.append(str(path.resolve()))
    return paths


def validate(config: TrainConfig, model, images: list[str], run_dir: Path, step: int) -> Path:
    """Render, measure and record the validation sweep for `step`; returns its HTML report."""
    spec = SweepSpec(
        name=f"{config.name}-step{step:06d}",
        model=model.name,
        images=images,
        grid=config.validation.grid,
        fixed=config.validation.fixed,
        trackers=config.trackers,
    )
    runs_dir = run_dir / "validation"
    model.weights_changed()
    run_sweep(
        sweep_for_model(spec, model, Path.cwd(), runs_dir, True, config.validation.batch_size),
        fresh=True,
        progress=False,
    )
    return write_report(runs_dir, spec.name)
