"""svdlab: image-to-video with Stable Video Diffusion, batched, seed-compatible with diffusers, measured."""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "generate": "svdlab.api",
    "GeneratedVideo": "svdlab.api",
    "load_model": "svdlab.models",
    "SVDModel": "svdlab.models",
    "PRESETS": "svdlab.models",
    "GenerationParams": "svdlab.params",
    "VideoEngine": "svdlab.engine",
    "Job": "svdlab.engine",
    "SvdlabError": "svdlab.errors",
    "StableVideoDiffusionPipeline": "svdlab.pipeline",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """Import public names on first use, so that `svdlab --help` starts without loading torch."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'svdlab' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
