"""Temporal VAE decode of SVD latents in chunks of frames."""

from __future__ import annotations

import torch


@torch.inference_mode()
def decode_frames(model, latents: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """Frames (F, 3, H, W) float32 in [0, 1] on the CPU from one video's latents (F, C, h, w)."""
    vae = model.vae
    scaled = latents / vae.config.scaling_factor
    decoder_dtype = vae.decoder.conv_in.weight.dtype
    chunks = []
    for start in range(0, scaled.shape[0], chunk_size):
        chunk = scaled[start : start + chunk_size].to(model.device, decoder_dtype)
        chunks.append(vae.decode(chunk, num_frames=chunk.shape[0]).sample.float().cpu())
    return (torch.cat(chunks) / 2 + 0.5).clamp(0, 1)
