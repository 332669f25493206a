"""The drop-in pipeline's outputs in diffusers' forms: PIL frames, numpy or torch arrays, or latents."""

from __future__ import annotations

import torch
from diffusers.image_processor import VaeImageProcessor

from svdlab.errors import InvalidParameterError

OUTPUT_TYPES = ("pil", "np", "pt", "latent")


def check_output_type(output_type: str) -> None:
    """Refuse an output type diffusers' pipeline does not have."""
    if output_type not in OUTPUT_TYPES:
        raise InvalidParameterError(
            f"output_type={output_type!r} is not allowed: choose one of {', '.join(OUTPUT_TYPES)}"
        )


def format_videos(videos: list[torch.Tensor], output_type: str):
    """Videos as diffusers returns them: frames (F, 3, H, W) in [0, 1] become a list of lists of PIL images,
    an array (B, F, H, W, 3) or a tensor (B, F, 3, H, W); latents (F, C, h, w) a tensor (B, F, C, h, w)."""
    stacked = torch.stack(videos)
    if output_type in ("pt", "latent"):
        return stacked
    array = stacked.permute(0, 1, 3, 4, 2).float().numpy()
    if output_type == "np":
        return array
    return [VaeImageProcessor.numpy_to_pil(video) for video in array]
