"""After generation: frame interpolation (and, as they come, inbetweening, loops, long videos, upscaling)."""

from svdlab.post.interpolate import INTERPOLATION_METHODS, interpolate_frames, interpolate_video

__all__ = ["INTERPOLATION_METHODS", "interpolate_frames", "interpolate_video"]
