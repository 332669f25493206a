"""What planning a sweep needs from a model (defaults, size multiple, identity), read from its configs and
files without loading its weights, so that `sweep --dry-run` never loads or downloads a checkpoint."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import torch

from svdlab.errors import ModelNotAvailableError
from svdlab.models.loading import (
    HUB_ID,
    PRESET_FILE,
    _preset_for_folder,
    default_device,
    folder_weights_sha256,
    load_model,
    resolve_dtype,
)
from svdlab.models.presets import PRESETS, REPO_TO_PRESET, SHIPPED_MODELS, ModelPreset

SVD_SIZE_MULTIPLE = 64  # the SVD checkpoints: 8 pixels per latent, then 3 halvings in the UNet
UNKNOWN_REVISION = "not downloaded"


@dataclass
class ModelOutline:
    """A model as far as planning goes: its name, defaults, size multiple and identity (the revision of a
    hub model that is not downloaded is unknown)."""

    name: str
    source: str
    location: str
    preset: ModelPreset
    size_multiple: int
    dtype: torch.dtype
    device: torch.device
    revision: str | None = None
    weights: str | None = None

    @property
    def known(self) -> bool:
        """Whether the identity is complete, so that job keys match those of a real run."""
        return self.revision != UNKNOWN_REVISION

    def describe(self) -> dict:
        """The identity a manifest would record, as SVDModel.describe gives it."""
        identity = {
            "name": self.name,
            "source": self.source,
            "location": self.location,
            "revision": self.revision,
        }
        if self.source != "hub":
            identity["weights_sha256"] = self.weights
        return {**identity, "dtype": str(self.dtype).removeprefix("torch."), "device": str(self.device)}


def outline_model(name: str) -> ModelOutline:
    """The outline of a preset, hub id or local folder, as load_model would resolve it, without loading."""
    device = default_device()
    dtype = resolve_dtype(None, device)
    preset = PRESETS.get(name)
    if preset is not None and preset.repo_id is None and not preset.shipped:  # built in-process: no weights
        model = load_model(name, device="cpu", dtype=dtype)
        return ModelOutline(
            name,
            "builtin",
            name,
            preset,
            model.size_multiple,
            dtype,
            device,
            model.revision,
            model.weights_sha256(),
        )
    repo_id = preset.repo_id if preset else None
    folder = SHIPPED_MODELS / name if preset is not None and preset.shipped else Path(name).expanduser()
    if repo_id is None and not folder.is_dir():
        if not HUB_ID.match(name):
            load_model(name)  # raises the one-line "unknown model" error
        repo_id = name
    if repo_id is None:
        unet, vae = _configs(folder)
        multiple = _size_multiple(unet, vae)
        found = preset if preset is not None else _preset_for_folder(folder, unet, _vae_scale(vae), None)
        source = "shipped" if preset is not None else "local"
        location = str(folder)
        return ModelOutline(
            found.name if source == "shipped" else location,
            source,
            location,
            found,
            multiple,
            dtype,
            device,
            weights=folder_weights_sha256(folder),
        )
    cached = huggingface_hub.try_to_load_from_cache(repo_id, "model_index.json")
    if isinstance(cached, str):
        snapshot = Path(cached).parent
        unet, vae = _configs(snapshot)
        found = _preset_for_folder(snapshot, unet, _vae_scale(vae), repo_id)
        return ModelOutline(
            repo_id, "hub", repo_id, found, _size_multiple(unet, vae), dtype, device, snapshot.name
        )
    if repo_id not in REPO_TO_PRESET:
        raise ModelNotAvailableError(
            f"{repo_id} is not downloaded, so a dry run cannot read its defaults; run the sweep once online "
            "or use a preset (svdlab models)"
        )
    return ModelOutline(
        repo_id, "hub", repo_id, REPO_TO_PRESET[repo_id], SVD_SIZE_MULTIPLE, dtype, device, UNKNOWN_REVISION
    )


def _configs(folder: Path) -> tuple[SimpleNamespace, SimpleNamespace]:
    """The UNet's and the VAE's config.json of a diffusers folder, as attribute namespaces."""
    try:
        return tuple(  # type: ignore[return-value]
            SimpleNamespace(**json.loads((folder / part / "config.json").read_text()))
            for part in ("unet", "vae")
        )
    except (OSError, ValueError) as error:
        raise ModelNotAvailableError(
            f"{folder} is not a diffusers SVD folder (unet/config.json, vae/config.json: {error}); "
            f"save one with SVDModel.save_pretrained or download a checkpoint ({PRESET_FILE} is optional)"
        ) from error


def _vae_scale(vae: SimpleNamespace) -> int:
    return 2 ** (len(vae.block_out_channels) - 1)


def _size_multiple(unet: SimpleNamespace, vae: SimpleNamespace) -> int:
    return _vae_scale(vae) * 2 ** (len(unet.block_out_channels) - 1)
