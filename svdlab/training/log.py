"""The training log: one JSON line per logged step in the run folder, mirrored to Weights & Biases."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from svdlab.errors import SvdlabWarning
from svdlab.experiments.spec import WandbSpec
from svdlab.experiments.trackers import describe_error, wandb_settings

WANDB_HINT = "training goes on with the local log only; run `wandb login` or set WANDB_MODE=offline"


class TrainingLog:
    """Appends {"step", ...values} lines to log.jsonl; with a wandb spec, logs the same to one run."""

    def __init__(
        self, run_dir: Path, name: str, config: dict, wandb_spec: WandbSpec | None, enabled: bool = True
    ):
        self.path = run_dir / "log.jsonl"
        self.enabled = enabled
        self.run: Any = None
        if enabled and wandb_spec is not None:
            self._guarded(self._init, wandb_spec, name, config)

    def log(self, step: int, values: dict[str, Any]) -> None:
        """Record the values at an optimizer step (nothing when disabled, as on non-main processes)."""
        if not self.enabled:
            return
        with self.path.open("a") as handle:
            handle.write(json.dumps({"step": step, **values}) + "\n")
        if self.run is not None:
            self._guarded(self.run.log, values, step)

    def close(self) -> None:
        """Finish the wandb run, if any."""
        if self.run is not None:
            self._guarded(self.run.finish)
            self.run = None

    def _init(self, spec: WandbSpec, name: str, config: dict) -> None:
        import wandb

        self.run = wandb.init(
            project=spec.project,
            entity=spec.entity,
            group=spec.group or name,
            name=name,
            config=config,
            settings=wandb_settings(wandb),
        )

    def _guarded(self, action, *args) -> None:
        """Run a wandb action; on failure warn once and go on without wandb."""
        try:
            action(*args)
        except Exception as error:
            self.run = None
            warnings.warn(
                f"wandb logging failed ({describe_error(error)}); {WANDB_HINT}", SvdlabWarning, stacklevel=3
            )
