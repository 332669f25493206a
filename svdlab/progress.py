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
def generation_progress(total_steps: int, total_videos: int, enabled: bool = True):
    """A GenerationProgress shown on stderr while the block runs."""
    if not enabled:
        yield GenerationProgress(None, total_steps, total_videos)
        return
    columns = (
        TextColumn("{task.description:>6}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        yield GenerationProgress(progress, total_steps, total_videos)
