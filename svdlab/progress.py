"""Progress bars for long work (rich): counts and ETA, hidden with --quiet."""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class GenerationProgress:
    """Two bars, sampler steps and finished videos; does nothing when disabled."""

    def __init__(self, progress: Progress | None, total_steps: int, total_videos: int):
        self.progress = progress
        if progress is not None:
            self.steps = progress.add_task("steps", total=total_steps)
            self.videos = progress.add_task("videos", total=total_videos)

    def step(self) -> None:
        """One sampler step of one pack is done."""
        if self.progress is not None:
            self.progress.advance(self.steps)

    def video(self) -> None:
        """One video is written."""
        if self.progress is not None:
            self.progress.advance(self.videos)


@contextmanager
def _shown(columns: tuple, enabled: bool):
    """A rich Progress with these columns on stderr while the block runs, or None when disabled."""
    if not enabled:
        yield None
        return
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        yield progress


@contextmanager
def generation_progress(total_steps: int, total_videos: int, enabled: bool = True):
    """A GenerationProgress shown on stderr while the block runs."""
    columns = (
        TextColumn("{task.description:>6}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with _shown(columns, enabled) as progress:
        yield GenerationProgress(progress, total_steps, total_videos)


class TrainingProgress:
    """One bar of optimizer steps showing the stage and the running loss; does nothing when disabled."""

    def __init__(self, progress: Progress | None, total: int, done: int):
        self.progress = progress
        if progress is not None:
            self.task = progress.add_task("train", total=total, completed=done, stage="", loss=float("nan"))

    def step(self, stage: str, loss: float) -> None:
        """One optimizer step is done."""
        if self.progress is not None:
            self.progress.update(self.task, advance=1, stage=stage, loss=loss)


@contextmanager
def training_progress(total_steps: int, done_steps: int, enabled: bool = True):
    """A TrainingProgress shown on stderr while the block runs."""
    columns = (
        TextColumn("{task.fields[stage]:>8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with _shown(columns, enabled) as progress:
        yield TrainingProgress(progress, total_steps, done_steps)
