"""Metrics for generated videos: motion, flicker, warp error, dissolution, loop seam, fidelity."""

from svdlab.metrics.fidelity import fidelity, psnr, ssim
from svdlab.metrics.flow import farneback_flow, to_gray
from svdlab.metrics.motion import motion_score
from svdlab.metrics.persistence import INTACT_BELOW, dissolution
from svdlab.metrics.temporal import flicker, loop_seam, warp_error
from svdlab.metrics.video import METRIC_UNITS, measure_video

__all__ = [
    "INTACT_BELOW",
    "METRIC_UNITS",
    "dissolution",
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
