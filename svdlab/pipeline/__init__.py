"""A drop-in for diffusers' StableVideoDiffusionPipeline over svdlab's engine; calls recorded as sweeps."""

from svdlab.pipeline.pipeline import StableVideoDiffusionPipeline, StableVideoDiffusionPipelineOutput
from svdlab.pipeline.recording import CallRecording

__all__ = ["CallRecording", "StableVideoDiffusionPipeline", "StableVideoDiffusionPipelineOutput"]
