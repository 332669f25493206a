"""All metrics of one video in one dict with stable keys; METRIC_UNITS names each key's unit.

Keys: motion_score, flicker, warp_error, dissolution, loop_seam and, given the conditioning image, psnr_first,
ssim_first, psnr_mean, ssim_mean. Each is defined in its own module (motion, temporal, fidelity); here the
frames are converted, shrunk and their optical flow computed once for motion_score and warp_error;
dissolution computes its own, on frames of FLOW_SIDE px with their contrast stretched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from svdlab.media import frames_to_uint8
from svdlab.metrics.fidelity import fidelity
from svdlab.metrics.flow import FLOW_SIDE, both_flows, downscale, fit_side
from svdlab.metrics.motion import mean_magnitude
from svdlab.metrics.persistence import dissolution_from_flows, persistence_flows
from svdlab.metrics.temporal import compensated_error, flicker, loop_seam

if TYPE_CHECKING:
    import numpy as np
    import PIL.Image
    import torch

METRIC_UNITS: dict[str, str] = {
    "motion_score": "px/frame",
    "flicker": "luma levels (0..255) per frame",
    "warp_error": "0..1",
    "dissolution": "ratio (0 = moves as wholes, 1 = replaced in place)",
    "loop_seam": "ratio",
    "psnr_first": "dB",
    "ssim_first": "index (-1..1, 1 = identical)",
    "psnr_mean": "dB",
    "ssim_mean": "index (-1..1, 1 = identical)",
}


def measure_video(
    frames: np.ndarray | torch.Tensor, reference: PIL.Image.Image | np.ndarray | torch.Tensor | None = None
) -> dict[str, float]:
    """A video's motion, flicker, warp error, dissolution, loop seam; fidelity to `reference` if given."""
    pixels = frames_to_uint8(frames)
    small = downscale(pixels, FLOW_SIDE)
    forward, backward = both_flows(small)
    sized = fit_side(pixels, FLOW_SIDE)
    metrics = {
        "motion_score": mean_magnitude(forward, pixels.shape[1:3]),
        "flicker": flicker(pixels),
        "warp_error": compensated_error(small, forward, backward),
        "dissolution": dissolution_from_flows(sized, *persistence_flows(sized)),
        "loop_seam": loop_seam(pixels),
    }
    if reference is not None:
        metrics.update(fidelity(pixels, reference))
    return metrics
