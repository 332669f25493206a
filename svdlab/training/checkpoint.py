"""Training checkpoints: networks, EMA, optimizer and step in one folder per step, written atomically,
so that a run resumes exactly where its last checkpoint left it."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from svdlab.errors import InvalidParameterError

STATE_FILE = "state.json"


@dataclass
class Checkpoint:
    """A saved training state: its folder and the step it was taken after."""

    folder: Path
    step: int
    state: dict

    def load_network(self, name: str, network: torch.nn.Module) -> None:
        """Load a saved network's weights (exact keys) into `network`."""
        network.load_state_dict(load_file(self.folder / f"{name}.safetensors"))

    def load_object(self, name: str):
        """A saved torch object (EMA, optimizer or scaler state), or None if it was not saved."""
        path = self.folder / f"{name}.pt"
        return torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else None


def save_checkpoint(
    folder: Path, step: int, state: dict, networks: dict[str, torch.nn.Module], objects: dict, keep: int
) -> Path:
    """Write checkpoints/step-NNNNNN (networks as safetensors, other state as torch files) atomically,
    then drop all but the newest `keep`."""
    root = folder / "checkpoints"
    target = root / f"step-{step:06d}"
    partial = root / f".step-{step:06d}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name, network in networks.items():
        tensors = {key: value.detach().cpu().contiguous() for key, value in network.state_dict().items()}
        save_file(tensors, partial / f"{name}.safetensors")
    for name, value in objects.items():
        if value is not None:
            torch.save(value, partial / f"{name}.pt")
    (partial / STATE_FILE).write_text(json.dumps({**state, "step": step}, indent=2) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    for old in sorted(root.glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def latest_checkpoint(folder: Path) -> Checkpoint | None:
    """The newest complete checkpoint of a run folder, or None."""
    found = sorted((folder / "checkpoints").glob("step-*"))
    for candidate in reversed(found):
        state_path = candidate / STATE_FILE
        if state_path.is_file():
            state = json.loads(state_path.read_text())
            return Checkpoint(candidate, int(state["step"]), state)
    return None


def check_resumable(checkpoint: Checkpoint, fingerprint: str, config_path: Path) -> None:
    """Refuse to resume a run whose model, data, seed, objective, LoRA or EMA changed since its checkpoint."""
    if checkpoint.state.get("fingerprint") != fingerprint:
        raise InvalidParameterError(
            f"{checkpoint.folder} was trained with other model, data, seed, objective, LoRA or EMA settings "
            f"than {config_path} gives now; restore them, or pass --fresh to start the run over"
        )
