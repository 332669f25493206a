"""Memory modes: model CPU offload, sequential offload and UNet feed-forward chunking."""

from __future__ import annotations

import torch
from accelerate import cpu_offload, cpu_offload_with_hook
from accelerate.hooks import remove_hook_from_module

OFFLOAD_MODES = ("none", "model", "sequential")


def offload(model, mode: str, device: torch.device) -> None:
    """Keep weights in CPU memory and move them to device only while they run."""
    parts = (model.image_encoder, model.unet, model.vae)  # the order they run in, as diffusers chains them
    if mode == "model":
        previous = None
        for part in parts:
            part.to("cpu")
            _, previous = cpu_offload_with_hook(part, device, prev_module_hook=previous)
    elif mode == "sequential":
        for part in parts:
            part.to("cpu")
            cpu_offload(part, execution_device=device)
    elif mode != "none":
        raise ValueError(f"offload must be one of {OFFLOAD_MODES}, not {mode!r}")


def remove_offload(model) -> None:
    """Take away any offload hooks, so that the networks can be placed afresh."""
    for part in (model.image_encoder, model.unet, model.vae):
        remove_hook_from_module(part, recurse=True)


def enable_forward_chunking(model) -> None:
    """Run the UNet's feed-forward layers one frame at a time (less memory, same result)."""
    model.unet.enable_forward_chunking(chunk_size=1, dim=0)
