"""`sweep --dry-run`: how many jobs a sweep has, how many are finished and how they pack, from the spec,
the store and the model's configs alone (no weights are loaded or downloaded)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from svdlab.engine.batching import group_jobs, split
from svdlab.experiments.planner import plan_sweep
from svdlab.experiments.spec import load_spec
from svdlab.experiments.store import Store
from svdlab.models.outline import ModelOutline, outline_model


@dataclass
class DryRun:
    """A sweep's plan: its jobs, how many are finished (None: unknown), the same-shape groups the rest
    fall into, and their packs when the batch size is fixed (None: measured when the sweep starts)."""

    name: str
    model: ModelOutline
    jobs: int
    done: int | None
    groups: list[int]
    packs: list[int] | None

    def summary(self) -> str:
        """One line for the terminal."""
        todo = sum(self.groups)
        done = (
            f"{self.done} already done"
            if self.done is not None
            else f"already done unknown ({self.model.name} is not downloaded)"
        )
        if self.packs is not None:
            packing = f"{len(self.packs)} packs of sizes {self.packs}"
        else:
            groups = f"{len(self.groups)} same-shape group{'' if len(self.groups) == 1 else 's'}"
            packing = (
                f"{groups} of sizes {self.groups}, packed by a measurement when the sweep starts "
                "(--batch-size N fixes the packs)"
            )
        return (
            f"{self.name}: {self.jobs} jobs, {done}, {todo} to run in {packing}; "
            f"time unknown until the model is loaded (no weights were loaded) on {self.model.device}"
        )


def dry_run(
    spec_path: str | Path,
    runs_dir: str | Path = "runs",
    fresh: bool = False,
    batch_size: int | None = None,
    model: str | None = None,
) -> DryRun:
    """Plan a sweep (with `model` instead of the spec's, when given) without loading the model's weights."""
    spec_path = Path(spec_path)
    spec = load_spec(spec_path, model)
    outline = outline_model(spec.model)
    jobs = plan_sweep(spec, outline, spec_path.parent)
    finished: set[str] = set()
    if outline.known and not fresh:
        store = Store(runs_dir)
        try:
            finished = store.finished_keys(spec.name)
        finally:
            store.close()
    todo = [job.engine_job() for job in jobs if job.key not in finished]
    groups = list(group_jobs(todo).values())
    packs = [len(pack) for group in groups for pack in split(group, batch_size)] if batch_size else None
    done = len(jobs) - len(todo) if outline.known else None
    return DryRun(spec.name, outline, len(jobs), done, [len(group) for group in groups], packs)
