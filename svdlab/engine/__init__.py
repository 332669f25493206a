"""The SVD sampling engine: conditioning, samplers, batching, decoding."""

from svdlab.engine.engine import Job, VideoEngine, VideoResult

__all__ = ["Job", "VideoEngine", "VideoResult"]
