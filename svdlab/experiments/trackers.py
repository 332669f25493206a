"""Trackers besides the local store: Weights & Biases runs per swept combination and a summary table."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from svdlab.errors import SvdlabWarning
from svdlab.experiments.spec import SweepSpec, WandbSpec
from svdlab.media import source_stem

WANDB_VIDEO_FORMATS = ("gif", "mp4", "ogg", "webm")
INIT_TIMEOUT_S = 5  # an unreachable or silent server costs the sweep this once, then wandb is off
WANDB_HINT = "the sweep goes on with the local store only; run `wandb login` or set WANDB_MODE=offline"
INSTALL_HINT = "the sweep goes on with the local store only; install it with `pip install wandb`"


@dataclass
class TrackedVideo:
    """One finished video as trackers see it: its image, swept values, parameters, file and metrics."""

    image: str
    swept: dict
    params: dict
    video_path: Path
    metrics: dict[str, float]


class Tracker(Protocol):
    """Somewhere besides the local store that a sweep's videos are logged to."""

    def log_video(self, job: TrackedVideo) -> None:
        """Log one finished video with its metrics."""

    def close(self) -> None:
        """Finish logging; called once when the sweep ends."""


def make_trackers(spec: SweepSpec, model_name: str) -> list[Tracker]:
    """The trackers a sweep spec asks for; none without a [trackers] section."""
    if spec.trackers.wandb is None:
        return []
    return [WandbTracker(spec.trackers.wandb, spec.name, model_name)]


def run_name(swept: dict) -> str:
    """A run name from swept values, like 'motion_bucket_id=180,fps=6'."""
    return ",".join(f"{key}={value}" for key, value in swept.items())


class WandbTracker:
    """Weights & Biases: one run per swept combination in the experiment's group, plus a summary run."""

    def __init__(self, spec: WandbSpec, experiment: str, model_name: str) -> None:
        self.spec = spec
        self.experiment = experiment
        self.model_name = model_name
        self.group = spec.group or experiment
        self.runs: dict[str, Any] = {}
        self.videos: list[TrackedVideo] = []
        self.failed = False

    def log_video(self, job: TrackedVideo) -> None:
        """Log a video and its metrics, keyed by image, in the run of its swept values."""
        self._guarded(self._log, job)

    def close(self) -> None:
        """Log the summary table in its own run and finish every run."""
        if self.videos:
            self._guarded(self._log_summary)
        self._guarded(self._finish_runs)

    def _guarded(self, action: Callable[..., None], *args: Any) -> None:
        """Run a wandb action; on the first failure warn once, finish what is open and stop tracking."""
        if self.failed:
            return
        try:
            action(*args)
        except Exception as error:
            self.failed = True
            hint = INSTALL_HINT if isinstance(error, ModuleNotFoundError) else WANDB_HINT
            warnings.warn(
                f"wandb logging failed ({describe_error(error)}); {hint}",
                SvdlabWarning,
                stacklevel=3,
            )
            for run in self.runs.values():
                with contextlib.suppress(Exception):
                    run.finish(exit_code=1)
            self.runs.clear()

    def _log(self, job: TrackedVideo) -> None:
        wandb = _import_wandb()
        name = run_name(job.swept) or self.experiment
        if name not in self.runs:
            config = {**job.params, **job.swept, "model": self.model_name, "experiment": self.experiment}
            self.runs[name] = self._init(name, config)
        run = self.runs[name]
        stem = source_stem(job.image)
        metrics = {f"{stem}/{key}": value for key, value in job.metrics.items()}
        media = _video(wandb, job.video_path)
        run.log({**metrics, **({f"{stem}/video": media} if media is not None else {})})
        run.summary.update(metrics)
        self.videos.append(job)

    def _log_summary(self) -> None:
        wandb = _import_wandb()
        swept_keys = list(dict.fromkeys(key for job in self.videos for key in job.swept if key != "seed"))
        metric_keys = list(dict.fromkeys(key for job in self.videos for key in job.metrics))
        table = wandb.Table(columns=["image", *swept_keys, "seed", *metric_keys, "video"])
        for job in self.videos:
            table.add_data(
                source_stem(job.image),
                *(job.swept.get(key) for key in swept_keys),
                job.params.get("seed"),
                *(job.metrics.get(key) for key in metric_keys),
                _video(wandb, job.video_path),
            )
        with self._init("summary", {"model": self.model_name, "experiment": self.experiment}) as run:
            run.log({"videos": table})

    def _finish_runs(self) -> None:
        while self.runs:
            _, run = self.runs.popitem()
            run.finish()

    def _init(self, name: str, config: dict) -> Any:
        """A new run in this experiment's project and group."""
        wandb = _import_wandb()
        return wandb.init(
            project=self.spec.project,
            entity=self.spec.entity,
            group=self.group,
            name=name,
            config=config,
            reinit="create_new",
            settings=wandb_settings(wandb),
        )


def wandb_settings(wandb: Any) -> Any:
    """wandb settings for svdlab's runs: quiet, and a short wait for the server when a run starts."""
    return wandb.Settings(console="off", silent=True, init_timeout=INIT_TIMEOUT_S)


def _import_wandb() -> Any:
    """The wandb package, imported only when a tracker first needs it."""
    import wandb

    return wandb


def _video(wandb: Any, path: Path) -> Any:
    """A wandb.Video of the file, or None for formats wandb cannot show."""
    format = Path(path).suffix.removeprefix(".").lower()
    if format not in WANDB_VIDEO_FORMATS:
        return None
    return wandb.Video(str(path), format=format)


def describe_error(error: Exception) -> str:
    """An exception as one short line."""
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."
