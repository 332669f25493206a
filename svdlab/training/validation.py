"""Validation during training: a small sweep rendered through the engine with the current weights,
measured, stored and reported like any experiment (and logged to wandb when the config asks). A context
run renders every context pattern on held clips instead, against their true frames."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import numpy as np
import PIL.Image

from svdlab.engine import Job, VideoEngine
from svdlab.experiments.report import write_report
from svdlab.experiments.runner import run_sweep, sweep_for_model
from svdlab.experiments.spec import SweepSpec, params_from
from svdlab.media.export import frames_to_uint8
from svdlab.media.manifest import save_video
from svdlab.metrics.fidelity import psnr
from svdlab.training.config import ContextPattern, TrainConfig, resolve_path
from svdlab.training.context import pattern_frames


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


def validate(config: TrainConfig, model, images: list[str], run_dir: Path, step: int, dataset=None) -> Path:
    """Render, measure and record the validation sweep for `step`; returns its HTML report (for a context
    run, the summary of validate_context)."""
    if config.task == "context":
        return validate_context(config, model, dataset, run_dir, step)
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


def validate_context(config: TrainConfig, model, dataset, run_dir: Path, step: int) -> Path:
    """Render every context pattern on `count` clips spread over the dataset, each given its clip's true
    frames, into validation/step-N/PATTERN-CLIP.mp4; returns summary.json: per pattern, the PSNR of the
    given and of the generated frames against the true ones."""
    folder = run_dir / "validation" / f"step-{step:06d}"
    folder.mkdir(parents=True, exist_ok=True)
    count = min(config.validation.count, len(dataset))
    clips = [dataset[index * len(dataset) // count] for index in range(count)]
    params = params_from(**config.validation.fixed).resolved(model)
    params = params.model_copy(update={"num_frames": dataset.frames})
    jobs = []
    for pattern in get_args(ContextPattern):
        for clip in clips:
            given = {
                index: PIL.Image.fromarray(clip.frames[index])
                for index in pattern_frames(pattern, dataset.frames)
            }
            jobs.append(Job(given.get(0), params, tag=(pattern, clip), context=given))
    scores: dict[str, dict[str, list[float]]] = {}
    for result in VideoEngine(model, batch_size=config.validation.batch_size).run(jobs):
        pattern, clip = result.job.tag
        frames = frames_to_uint8(result.frames)
        save_video(
            frames,
            params.fps,
            "mp4",
            folder / f"{pattern}-{clip.id}.mp4",
            {"pattern": pattern, "clip": clip.id},
        )
        for index, (made, truth) in enumerate(zip(frames, clip.frames)):
            kind = "given" if index in result.job.context else "generated"
            scores.setdefault(pattern, {}).setdefault(kind, []).append(psnr(made, truth))
    summary = {
        pattern: {f"{kind}_psnr": round(float(np.mean(values)), 3) for kind, values in kinds.items()}
        for pattern, kinds in scores.items()
    }
    path = folder / "summary.json"
    path.write_text(json.dumps({"step": step, "patterns": summary}, indent=2) + "\n")
    return path
