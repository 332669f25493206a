"""After generation: frame interpolation (by flow or by a context model), keyframe inbetweening and loops,
long videos by continuation (and, as they come, upscaling)."""

from svdlab.post.interpolate import INTERPOLATION_METHODS, interpolate_frames, interpolate_video

__all__ = ["INTERPOLATION_METHODS", "interpolate_frames", "interpolate_video"]
