"""The SVD sampling engine: conditioning, samplers, batching, decoding."""

from svdlab.quiet import quiet_libraries

quiet_libraries()  # before diffusers' pipelines are imported, which prints a torchvision notice

from svdlab.engine.engine import DrawnNoise, Job, VideoEngine, VideoResult  # noqa: E402

__all__ = ["DrawnNoise", "Job", "VideoEngine", "VideoResult"]
