"""LoRA on the SVD UNet's attention layers: add, save (one safetensors file), load, scale and merge."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model, set_peft_model_state_dict
from peft.tuners.lora import LoraLayer
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from svdlab.errors import InvalidParameterError
from svdlab.hashing import file_sha256
from svdlab.media.atomic import atomic_path
from svdlab.models import SVDModel, load_model

LORA_TARGETS = ("spatial", "temporal", "both")
LORA_FORMAT = "svdlab-lora"
LORA_VERSION = "1"
ADAPTER = "svdlab"
BLOCKS = {
    "spatial": ("transformer_blocks",),
    "temporal": ("temporal_transformer_blocks",),
    "both": ("transformer_blocks", "temporal_transformer_blocks"),
}
ATTENTION = re.compile(
    r"(?:^|\.)(?P<block>temporal_transformer_blocks|transformer_blocks)\.\d+\.attn[12]\.(?:to_q|to_k|to_v|to_out\.0)$"
)
RESERVED = ("format", "version", "rank", "alpha", "targets")


def target_modules(unet: torch.nn.Module, targets: str = "both") -> list[str]:
    """Names of the attention projections (q, k, v, out) in the spatial, temporal or both kinds of block."""
    if targets not in LORA_TARGETS:
        raise InvalidParameterError(
            f"targets={targets!r} is not allowed: choose one of {', '.join(LORA_TARGETS)}"
        )
    return [
        name
        for name, module in unet.named_modules()
        if isinstance(module, torch.nn.Linear) and _block(name) in BLOCKS[targets]
    ]


def _block(name: str) -> str | None:
    """The kind of transformer block an attention projection sits in, or None for other layers."""
    match = ATTENTION.search(name)
    return match["block"] if match else None


def has_lora(unet: torch.nn.Module) -> bool:
    """Whether the UNet carries an svdlab LoRA."""
    return ADAPTER in getattr(unet, "peft_config", {})


def add_lora(
    unet: torch.nn.Module,
    *,
    rank: int = 8,
    alpha: float | None = None,
    targets: str = "both",
    dropout: float = 0.0,
) -> None:
    """Add a fresh LoRA (output unchanged, B = 0) to the attention layers; only its weights stay trainable."""
    if rank < 1:
        raise InvalidParameterError(f"rank={rank} is not allowed: use 1 or more")
    if not 0 <= dropout < 1:
        raise InvalidParameterError(f"dropout={dropout} is not allowed: use a value in [0, 1)")
    if has_lora(unet):
        raise InvalidParameterError(
            "the UNet already has a LoRA: merge it (merge_lora) or start from a freshly loaded model"
        )
    modules = target_modules(unet, targets)
    if not modules:
        raise InvalidParameterError(
            f"the UNet has no {targets} attention layers to put a LoRA on; use an SVD UNet"
        )
    config = LoraConfig(
        r=rank, lora_alpha=rank if alpha is None else alpha, lora_dropout=dropout, target_modules=modules
    )
    inject_adapter_in_model(config, unet, adapter_name=ADAPTER)


def lora_layers(unet: torch.nn.Module) -> list[tuple[str, LoraLayer]]:
    """The UNet's LoRA-wrapped layers with their names."""
    return [(name, module) for name, module in unet.named_modules() if isinstance(module, LoraLayer)]


def set_lora_scale(unet: torch.nn.Module, scale: float) -> None:
    """Multiply the LoRA's contribution by `scale` (0: the base model, 1: as trained)."""
    for _, layer in lora_layers(unet):
        layer.set_scale(ADAPTER, scale)


def lora_state_dict(unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA tensors, keyed `<module>.lora_A.weight` / `<module>.lora_B.weight` (no adapter name)."""
    if not has_lora(unet):
        raise InvalidParameterError("the UNet has no LoRA; add one with add_lora or load one with load_lora")
    return get_peft_model_state_dict(unet, adapter_name=ADAPTER)


def lora_metadata(unet: torch.nn.Module) -> dict[str, str]:
    """The header that makes a LoRA file self-describing: format, version, rank, alpha, targets."""
    config = unet.peft_config[ADAPTER]
    blocks = {_block(name) for name, _ in lora_layers(unet)}
    targets = next(name for name in LORA_TARGETS if set(BLOCKS[name]) == blocks)
    return {
        "format": LORA_FORMAT,
        "version": LORA_VERSION,
        "rank": str(config.r),
        "alpha": str(float(config.lora_alpha)),
        "targets": targets,
    }


def save_lora(unet: torch.nn.Module, path: str | Path, metadata: Mapping[str, str] | None = None) -> Path:
    """Write the LoRA as one .safetensors file (tensors + header); `metadata` adds string fields."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise InvalidParameterError(f"{path} must end in .safetensors: LoRA files are safetensors files")
    header = dict(metadata or {})
    clashes = sorted(set(header) & set(RESERVED))
    if clashes:
        raise InvalidParameterError(f"metadata may not set {', '.join(clashes)}: svdlab writes those itself")
    header.update(lora_metadata(unet))
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in lora_state_dict(unet).items()}
    with atomic_path(path) as temp:
        save_file(tensors, temp, metadata=header)
    return path


def read_lora(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and header of an svdlab LoRA file, checked to be one."""
    path = Path(path)
    if not path.is_file():
        raise InvalidParameterError(
            f"LoRA file {path} does not exist; pass the .safetensors file that training or save_lora wrote"
        )
    try:
        with safe_open(str(path), "pt") as handle:
            header = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except SafetensorError as error:
        raise InvalidParameterError(
            f"{path} is not a safetensors file ({error}); pass a LoRA file written by svdlab"
        ) from None
    if header.get("format") != LORA_FORMAT:
        raise InvalidParameterError(
            f"{path} is not an svdlab LoRA (its header lacks format={LORA_FORMAT}); "
            "pass a file written by svdlab"
        )
    if header.get("version") != LORA_VERSION:
        raise InvalidParameterError(
            f"{path} is svdlab LoRA version {header.get('version')!r} but this svdlab reads version "
            f"{LORA_VERSION}; use the svdlab version that wrote it"
        )
    try:
        ok = int(header["rank"]) >= 1 and float(header["alpha"]) > 0 and header["targets"] in LORA_TARGETS
    except (KeyError, ValueError):
        ok = False
    if not ok:
        raise InvalidParameterError(
            f"{path} has a damaged header (rank, alpha or targets); save the LoRA again"
        )
    return tensors, header


def load_lora(unet: torch.nn.Module, path: str | Path, scale: float = 1.0) -> dict[str, str]:
    """Add the LoRA saved in `path` at `scale` and return its header; on error the UNet stays as it was."""
    path = Path(path)
    tensors, header = read_lora(path)
    add_lora(unet, rank=int(header["rank"]), alpha=float(header["alpha"]), targets=header["targets"])
    try:
        _check_fits(path, tensors, lora_state_dict(unet))
        set_peft_model_state_dict(unet, tensors, adapter_name=ADAPTER)
    except BaseException:
        remove_lora(unet)
        raise
    set_lora_scale(unet, scale)
    return header


def _check_fits(path: Path, tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    """Raise unless the file holds exactly the LoRA tensors the model expects, with the same shapes."""
    hint = "use the model the LoRA was trained on"
    unknown = sorted(set(tensors) - set(expected))
    if unknown:
        raise InvalidParameterError(
            f"{path} does not fit this model: {len(unknown)} of its tensors name layers the UNet lacks "
            f"(e.g. {unknown[0]}); {hint}"
        )
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise InvalidParameterError(
            f"{path} does not fit this model: it lacks {len(missing)} tensors the UNet needs "
            f"(e.g. {missing[0]}); {hint}"
        )
    for key, tensor in tensors.items():
        if tensor.shape != expected[key].shape:
            raise InvalidParameterError(
                f"{path} does not fit this model: {key} is {tuple(tensor.shape)} in the file "
                f"but {tuple(expected[key].shape)} in the UNet; {hint}"
            )


def remove_lora(unet: torch.nn.Module) -> None:
    """Take the LoRA out again, restoring the original layers unchanged."""
    _unload(unet, merge=False)


def merge_lora(unet: torch.nn.Module) -> torch.nn.Module:
    """Fold the LoRA (at its current scale) into the base weights and remove it: a plain diffusers UNet."""
    _unload(unet, merge=True)
    return unet


def _unload(unet: torch.nn.Module, merge: bool) -> None:
    """Replace every LoRA-wrapped layer by its base layer, merging the LoRA into it first if asked."""
    if not has_lora(unet):
        raise InvalidParameterError("the UNet has no LoRA; add one with add_lora or load one with load_lora")
    for name, layer in lora_layers(unet):
        if merge:
            layer.merge(adapter_names=[ADAPTER])
        parent, _, child = name.rpartition(".")
        setattr(unet.get_submodule(parent), child, layer.get_base_layer())
    del unet.peft_config


def check_lora(path: str | Path, offload: str = "none") -> dict[str, str]:
    """Fail fast, before a model loads, on a bad LoRA file or an offload mode a LoRA cannot run with."""
    _check_offload(offload)
    return read_lora(path)[1]


def _check_offload(offload: str) -> None:
    """Refuse sequential offload, which leaves no weights on the UNet for a LoRA to attach to."""
    if offload == "sequential":
        raise InvalidParameterError(
            "a LoRA cannot be applied with offload 'sequential': use offload 'model', "
            "or merge the LoRA first (svdlab lora merge) and generate from the merged folder"
        )


def apply_lora(model: SVDModel, path: str | Path, scale: float = 1.0) -> dict:
    """Add a LoRA file to an SVDModel's UNet; returns what a manifest records about it."""
    _check_offload(model.memory["offload"])
    path = Path(path)
    header = load_lora(model.unet, path, scale)
    return {
        "file": str(path.resolve()),
        "sha256": file_sha256(path),
        "scale": scale,
        "rank": int(header["rank"]),
        "alpha": float(header["alpha"]),
        "targets": header["targets"],
    }


@contextmanager
def lora_applied(model: SVDModel, path: str | Path | None, scale: float = 1.0) -> Iterator[dict | None]:
    """Apply a LoRA file (if any) for the duration of the block, then restore the model as it was."""
    if path is None:
        yield None
        return
    trainable = {parameter: parameter.requires_grad for parameter in model.unet.parameters()}
    entry = apply_lora(model, path, scale)
    try:
        yield entry
    finally:
        remove_lora(model.unet)
        for parameter, flag in trainable.items():
            parameter.requires_grad_(flag)


def save_merged(
    model: str | Path | SVDModel,
    path: str | Path,
    out: str | Path,
    scale: float = 1.0,
    dtype: str | None = None,
) -> Path:
    """Merge a LoRA file into a model (name, folder or SVDModel) and write it as a diffusers folder."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidParameterError(f"{out} already exists and is not empty; choose a new output folder")
    check_lora(path)
    if not isinstance(model, SVDModel):
        model = load_model(model, device="cpu", dtype=dtype)
    apply_lora(model, path, scale)
    merge_lora(model.unet)
    return model.save_pretrained(out)
