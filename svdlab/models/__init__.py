"""SVD models: presets, loading (hub, folder, built-in) and memory modes."""

from svdlab.models.loading import SVDModel, load_model
from svdlab.models.memory import OFFLOAD_MODES
from svdlab.models.presets import PRESETS, ModelPreset

__all__ = ["OFFLOAD_MODES", "PRESETS", "ModelPreset", "SVDModel", "load_model"]
