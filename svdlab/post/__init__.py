"""After generation: frame interpolation (by flow or by a context model), keyframe inbetweening and loops,
long videos by continuation, and upscaling (a learned video upscaler, users' super-resolution weights,
resampling)."""

from svdlab.post.interpolate import INTERPOLATION_METHODS, interpolate_frames, interpolate_video
from svdlab.post.upscale import UPSCALE_METHODS, make_upscaler, upscale_video

__all__ = [
    "INTERPOLATION_METHODS",
    "UPSCALE_METHODS",
    "interpolate_frames",
    "interpolate_video",
    "make_upscaler",
    "upscale_video",
]
