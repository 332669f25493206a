"""diffusers' StableVideoDiffusionPipeline as the reference that svdlab's frames are compared with."""

from __future__ import annotations

import PIL.Image
import torch


def diffusers_frames(pipe, image: PIL.Image.Image, params) -> torch.Tensor:
    """Frames (F, 3, H, W) float32 in [0, 1] from one pipeline call with these settings and seed."""
    out = pipe(
        image,
        height=params.height,
        width=params.width,
        num_frames=params.num_frames,
        num_inference_steps=params.steps,
        min_guidance_scale=params.min_guidance,
        max_guidance_scale=params.max_guidance,
        fps=params.fps,
        motion_bucket_id=params.motion_bucket_id,
        noise_aug_strength=params.noise_aug_strength,
        decode_chunk_size=params.decode_chunk_size,
        generator=torch.manual_seed(params.seed),
        output_type="pt",
    )
    return out.frames[0].float().cpu()
