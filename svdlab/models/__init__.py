"""SVD models: presets, loading (hub, folder, built-in) and memory modes."""

from svdlab.quiet import quiet_libraries

quiet_libraries()  # before diffusers' pipelines are imported, which prints a torchvision notice

from svdlab.models.loading import SVDModel, load_model  # noqa: E402
from svdlab.models.memory import OFFLOAD_MODES  # noqa: E402
from svdlab.models.presets import PRESETS, ModelPreset  # noqa: E402

__all__ = ["OFFLOAD_MODES", "PRESETS", "ModelPreset", "SVDModel", "load_model"]
