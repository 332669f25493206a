"""The SVD sampling engine: conditioning, samplers, batching, decoding."""

from svdlab.engine.engine import DrawnNoise, Job, VideoEngine, VideoResult

__all__ = ["DrawnNoise", "Job", "VideoEngine", "VideoResult"]
