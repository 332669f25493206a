"""Metrics for generated videos: motion score, flicker, warp error, loop seam and fidelity to the input."""

from svdlab.metrics.fidelity import fidelity, psnr, ssim
from svdlab.metrics.flow import farneback_flow, to_gray
from svdlab.metrics.motion import motion_score
from svdlab.metrics.temporal import flicker, loop_seam, warp_error
from svdlab.metrics.video import METRIC_UNITS, measure_video

__all__ = [
    "METRIC_UNITS",
    "farneback_flow",
    "fidelity",
    "flicker",
    "loop_seam",
    "measure_video",
    "motion_score",
    "psnr",
    "ssim",
    "to_gray",
    "warp_error",
]
