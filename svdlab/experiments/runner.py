"""The sweep runner: planned jobs through the engine in packs; each video written, measured and recorded
before the next pack starts, so a killed sweep resumes where it stopped."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from filelock import FileLock, Timeout

from svdlab.engine import VideoEngine
from svdlab.errors import OutOfMemoryError, SvdlabWarning
from svdlab.experiments.planner import PlannedJob, plan_sweep
from svdlab.experiments.spec import SweepSpec, load_spec
from svdlab.experiments.store import Store
from svdlab.experiments.trackers import TrackedVideo, make_trackers
from svdlab.hashing import update_from_file
from svdlab.media import atomic_path, frames_to_uint8
from svdlab.media.atomic import check_writable, remove_stale_temps
from svdlab.media.manifest import build_manifest, manifest_path, output_info, save_video, video_path
from svdlab.metrics import measure_video
from svdlab.models import load_model
from svdlab.post.cascade import Upscalers, cascade, stage_records
from svdlab.post.keyframes import keyframes_entry
from svdlab.progress import generation_progress

FITTED_INPUTS = "inputs"
MEMORY_HINT = "run the sweep again to resume; to use less memory set decode_chunk_size in [fixed]"


@dataclass
class Sweep:
    """A loaded sweep: its spec, model, planned jobs, store and the jobs still to run."""

    spec: SweepSpec
    model: object
    jobs: list[PlannedJob]
    store: Store
    todo: list[PlannedJob]
    engine: VideoEngine
    upscalers: Upscalers = field(default_factory=Upscalers)

    @property
    def folder(self) -> Path:
        """Where this experiment's videos and manifests go."""
        return self.store.runs_dir / self.spec.name

    def packs(self) -> list[list]:
        """The engine packs the remaining jobs will run in."""
        return self.engine.plan([job.engine_job() for job in self.todo])


def open_sweep(
    spec_path: str | Path,
    runs_dir: str | Path = "runs",
    fresh: bool = False,
    batch_size: int | None = None,
    model: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
) -> Sweep:
    """Load the spec and model (`model`, when given, instead of the spec's; on `device` in `dtype`, by default
    the best here), plan the jobs, and find which are not finished yet; a runs folder that cannot be written
    fails here, before the model loads."""
    spec_path = Path(spec_path)
    spec = load_spec(spec_path, model)
    check_writable(runs_dir)
    loaded = load_model(spec.model, device=device, dtype=dtype)
    return sweep_for_model(spec, loaded, spec_path.parent, runs_dir, fresh, batch_size)


def sweep_for_model(
    spec: SweepSpec,
    model,
    base: Path,
    runs_dir: str | Path = "runs",
    fresh: bool = False,
    batch_size: int | None = None,
) -> Sweep:
    """A sweep over a model already in memory (images relative to `base`), e.g. a model in training."""
    jobs = plan_sweep(spec, model, base)
    store = Store(runs_dir)
    done = set() if fresh else store.finished_keys(spec.name)
    todo = [job for job in jobs if job.key not in done]
    upscalers = Upscalers(str(model.device))
    for params in {job.params for job in jobs}:  # every upscaler loaded and checked before any work
        upscalers.for_params(params, model)
    return Sweep(spec, model, jobs, store, todo, VideoEngine(model, batch_size=batch_size), upscalers)


def run_sweep(sweep: Sweep, fresh: bool = False, progress: bool = True) -> int:
    """Run the remaining jobs; returns how many videos were made.

    One process at a time runs an experiment of a runs folder: a second sweep of it waits (with a
    warning) until the first ends, then runs only what is still missing, so every job is done once.
    """
    with claimed(sweep, fresh):
        return _run_todo(sweep, fresh, progress)


@contextmanager
def claimed(sweep: Sweep, fresh: bool) -> Iterator[None]:
    """Hold the experiment (see run_sweep), its half-written leftovers removed and `sweep.todo` cut to
    what is still missing (a sweep this one waited for may have done more)."""
    check_writable(sweep.folder)
    with _experiment_lock(sweep):
        remove_stale_temps(sweep.folder)  # what a killed run of this experiment left half-written
        done = set() if fresh else sweep.store.finished_keys(sweep.spec.name)
        sweep.todo = [job for job in sweep.todo if job.key not in done]
        yield


@contextmanager
def _experiment_lock(sweep: Sweep) -> Iterator[None]:
    """Hold the experiment's lock file (released by the OS if the process dies), waiting if needed."""
    lock = FileLock(sweep.store.runs_dir / f".{sweep.spec.name}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        warnings.warn(
            f"another sweep of {sweep.spec.name} is running in {sweep.store.runs_dir}; waiting for it to "
            "end, then running only what it left",
            SvdlabWarning,
            stacklevel=5,  # the line in run_sweep or run_sweep_on_ray that claims the experiment
        )
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _run_todo(sweep: Sweep, fresh: bool, progress: bool) -> int:
    """Run the jobs in sweep.todo, recording each; returns how many videos were made."""
    sweep.store.start_experiment(sweep.spec.name, sweep.spec.model_dump(), sweep.model.name, fresh=fresh)
    packs = sweep.packs()
    trackers = make_trackers(sweep.spec, sweep.model.name)
    made = 0
    with generation_progress(sum(p[0].params.steps for p in packs), len(sweep.todo), progress) as bar:
        try:
            for pack in packs:
                finished = 0
                for result in sweep.engine.run_pack(pack, on_step=bar.step):
                    tracked = _finish(sweep, result)
                    for tracker in trackers:
                        tracker.log_video(tracked)
                    finished += 1
                    made += 1
                    bar.video()
        except torch.OutOfMemoryError as error:
            reason = f"out of memory on {sweep.model.device}"
            for job in pack[finished:]:  # a pack yields in order: the rest of it never finished
                sweep.store.record_failed(sweep.spec.name, job.tag, sweep.model.name, reason)
            raise OutOfMemoryError(f"{reason} after {made} videos: {MEMORY_HINT}") from error
        finally:
            for tracker in trackers:
                tracker.close()
    return made


def _finish(sweep: Sweep, result) -> TrackedVideo:
    """Write, measure and record one finished video."""
    job: PlannedJob = result.job.tag
    pixels, manifest = describe_video(sweep.model, sweep.spec, job, result, sweep.upscalers)
    target = sweep.folder / manifest["output"]["file"]
    path = save_video(pixels, manifest["output"]["fps"], sweep.spec.outputs.format, target, manifest)
    return record_video(sweep, job, path, manifest)


def describe_video(
    model, spec: SweepSpec, job: PlannedJob, result, upscalers: Upscalers
) -> tuple[np.ndarray, dict]:
    """A finished video's frames (F, H, W, 3) uint8 after the cascade, and its manifest, metrics included."""
    format = spec.outputs.format
    target = video_path(Path(), f"{job.stem}-{job.key}", format)
    image = {**job.info, "fitted_file": fitted_input_name(job)}
    manifest = build_manifest(
        model, job.params, image, result.timings, output_info(job.params, format, target)
    )
    upscaler = upscalers.for_params(job.params, model)
    sampled = result.timings.get("sampling_s")
    pixels, entries = cascade(frames_to_uint8(result.frames), job.params, model, upscaler, sampled)
    manifest.update({**keyframes_entry(model, job.params), **entries})
    timings, stage_metrics = stage_records(entries)
    manifest["timings"].update(timings)
    reference = job.image
    if reference is not None and pixels.shape[1:3] != (reference.height, reference.width):
        reference = reference.resize((pixels.shape[2], pixels.shape[1]), PIL.Image.LANCZOS)  # upscaled
    metrics = {**measure_video(pixels, reference), **stage_metrics}
    manifest.update({"experiment": spec.name, "job_key": job.key, "swept": job.swept, "metrics": metrics})
    return pixels, manifest


def record_video(sweep: Sweep, job: PlannedJob, path: Path, manifest: dict) -> TrackedVideo:
    """Record a video written with its manifest at `path` in the store (its fitted input saved beside)."""
    _save_fitted_input(sweep.folder, job)
    video = {
        "path": str(path.relative_to(sweep.store.runs_dir)),
        "manifest": str(manifest_path(path).relative_to(sweep.store.runs_dir)),
        "sha256": _content_sha256(path),
    }
    sweep.store.record_done(sweep.spec.name, job, manifest, video, manifest["metrics"])
    return TrackedVideo(job.source, job.swept, job.params.model_dump(), path, manifest["metrics"])


def fitted_input_name(job: PlannedJob) -> str:
    """Where the job's fitted input image goes, relative to the experiment folder."""
    params = job.params
    shape = f"{params.width}x{params.height}-{params.fit}"
    return f"{FITTED_INPUTS}/{job.stem}-{job.info['pixels_sha256'][:12]}-{shape}.png"


def _save_fitted_input(folder: Path, job: PlannedJob) -> None:
    """Write the job's input image as the model saw it (fitted to size) once per image and shape, for the
    report."""
    target = folder / fitted_input_name(job)
    if not target.is_file():
        with atomic_path(target) as temp:  # a failed write raises OutputError naming the file
            job.image.save(temp, format="PNG")


def _content_sha256(path: Path) -> str:
    """SHA-256 of a file, or of a folder's files in name order."""
    digest = hashlib.sha256()
    for file in sorted(path.iterdir()) if path.is_dir() else [path]:
        update_from_file(digest, file)
    return digest.hexdigest()
