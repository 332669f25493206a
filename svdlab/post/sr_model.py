"""Users' own super-resolution models (ESRGAN, Real-ESRGAN Compact, SwinIR, HAT, DAT, ...) via spandrel.

spandrel detects the architecture and its hyper-parameters from the state dict alone. It imports torchvision
at import time, but only for two architectures that are not super-resolution: LaMa inpainting
(`rotate`, `InterpolationMode`) and RestoreFormer face restoration (`normalize`). torchvision is not
needed otherwise (and has no build for some platforms), so without it `import_spandrel` lends spandrel
placeholders for those three names, which raise ModelNotAvailableError if ever called, and takes them
out of sys.modules again once spandrel is imported, so that no other library sees a fake torchvision.

Safetensors files load by default and are read with safetensors itself, so that no pickle code runs;
pickle files (.pth, .pt, .ckpt, .bin) load only when the user says they trust them (`allow_pickle`),
and then through torch's weights-only unpickler.
"""

from __future__ import annotations

import enum
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load_file

from svdlab.errors import InvalidParameterError, ModelNotAvailableError
from svdlab.hashing import file_sha256
from svdlab.post.tiles import tiled

if TYPE_CHECKING:
    from spandrel import ImageModelDescriptor

KNOWN_ARCHITECTURES = "ESRGAN, Real-ESRGAN Compact, SwinIR, HAT, DAT, SPAN, OmniSR, DRCT"
PLACEHOLDERS = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")


class InterpolationMode(enum.Enum):
    """Stand-in for torchvision's InterpolationMode, enough for spandrel's LaMa module to import."""

    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


def needs_torchvision(name: str):
    """A function that raises ModelNotAvailableError naming torchvision's `name` when called."""

    def missing(*args, **kwargs):
        raise ModelNotAvailableError(
            f"this spandrel architecture calls torchvision's {name}, so it needs torchvision: "
            "pip install torchvision"
        )

    return missing


def placeholder_torchvision() -> dict[str, ModuleType]:
    """Placeholder modules torchvision, .transforms and .transforms.functional with spandrel's three names."""
    modules = {name: ModuleType(name) for name in PLACEHOLDERS}
    functional = modules["torchvision.transforms.functional"]
    functional.InterpolationMode = InterpolationMode
    functional.rotate = needs_torchvision("rotate")
    functional.normalize = needs_torchvision("normalize")
    modules["torchvision"].transforms = modules["torchvision.transforms"]
    modules["torchvision.transforms"].functional = functional
    return modules


def import_spandrel() -> ModuleType:
    """The spandrel module, imported without torchvision if torchvision is not installed."""
    if sys.modules.get("spandrel") is not None:
        return sys.modules["spandrel"]
    try:
        import torchvision  # noqa: F401
    except ImportError:
        lent = placeholder_torchvision()
    else:
        lent = {}
    sys.modules.update(lent)
    try:
        import spandrel
    except ImportError as error:
        if error.name == "spandrel":
            raise ModelNotAvailableError(
                "--method sr needs spandrel: pip install spandrel (or pip install -e '.[sr]')"
            ) from None
        raise ModelNotAvailableError(
            f"spandrel cannot be imported ({error}); install what it names: pip install {error.name}"
        ) from None
    finally:
        for name, module in lent.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
    return spandrel


def read_state_dict(path: Path, allow_pickle: bool) -> dict:
    """The tensors of a weights file: safetensors always, pickle files only if `allow_pickle`."""
    if not path.is_file():
        raise InvalidParameterError(f"{path} does not exist or is not a file; pass the path of a model file")
    if path.suffix.lower() != ".safetensors" and not allow_pickle:
        raise InvalidParameterError(
            f"{path.name} is not a safetensors file, and pickle files (.pth, .pt, .ckpt, .bin) can run code "
            "when loaded; convert it to safetensors, or pass --allow-pickle (only for files you trust)"
        )
    try:
        if path.suffix.lower() == ".safetensors":
            state_dict = load_file(path, device="cpu")
        else:
            state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise InvalidParameterError(
            f"{path} holds Python objects besides tensors (or is damaged), which svdlab does not unpickle; "
            "save the model's state_dict() with safetensors and pass that file"
        ) from None
    except Exception as error:
        raise InvalidParameterError(
            f"{path} cannot be read as model weights ({first_line(error)}); check the file is complete, "
            "or download it again"
        ) from None
    if not isinstance(state_dict, dict):
        raise InvalidParameterError(
            f"{path} holds a {type(state_dict).__name__}, not a state dict of weights; "
            "save the model's state_dict() instead"
        )
    return state_dict


def first_line(error: Exception) -> str:
    """The first line of an exception's message, or its type's name if it has none."""
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


@dataclass
class SuperResolution:
    """A user's super-resolution model loaded through spandrel, with the file it came from."""

    descriptor: ImageModelDescriptor
    scale: int
    architecture: str
    path: Path
    sha256: str
    device: torch.device

    def describe(self, tile: int | None = None) -> dict:
        """The model as a manifest records it: architecture, scale, file, hash, device, dtype and tile."""
        return {
            "architecture": self.architecture,
            "scale": self.scale,
            "file": self.path.name,
            "sha256": self.sha256,
            "device": str(self.device),
            "dtype": str(self.descriptor.dtype).removeprefix("torch."),
            "tile": tile,
        }

    def run(self, frames: torch.Tensor) -> torch.Tensor:
        """The model's output for (T, 3, h, w) CPU frames, as float32 on the CPU."""
        inputs = frames.to(self.device, self.descriptor.dtype)
        return self.descriptor(inputs).to("cpu", torch.float32)

    def __call__(self, frames: torch.Tensor, tile: int | None = None) -> torch.Tensor:
        """(T, 3, H, W) frames in [0, 1] upscaled to (T, 3, H * scale, W * scale), one frame at a time."""
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(f"frames must be (T, 3, H, W), got {tuple(frames.shape)}")
        with torch.inference_mode():
            return torch.cat([tiled(self.run, frame[None], self.scale, tile) for frame in frames.float()])


def load_sr_model(
    path: str | Path,
    *,
    allow_pickle: bool = False,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> SuperResolution:
    """A user's super-resolution model file, its architecture found by spandrel, ready in eval mode."""
    spandrel = import_spandrel()
    path = Path(path)
    state_dict = spandrel.canonicalize_state_dict(read_state_dict(path, allow_pickle))
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        descriptor = spandrel.ModelLoader(device).load_from_state_dict(state_dict)
    except spandrel.UnsupportedModelError:
        raise InvalidParameterError(
            f"{path.name} is not a super-resolution architecture spandrel knows "
            f"({KNOWN_ARCHITECTURES}, ...); use a model file of one of those"
        ) from None
    except Exception as error:
        raise InvalidParameterError(
            f"spandrel cannot build a model from {path.name} ({first_line(error)}); check the file is a "
            "complete super-resolution model, or download it again"
        ) from None
    check_image_model(descriptor, path)
    if dtype is not None:
        try:
            descriptor.to(dtype=dtype)
        except spandrel.UnsupportedDtypeError:
            raise InvalidParameterError(
                f"{path.name} ({descriptor.architecture.name}) does not run in "
                f"{str(dtype).removeprefix('torch.')}; use float32"
            ) from None
    descriptor.eval()
    return SuperResolution(
        descriptor=descriptor,
        scale=descriptor.scale,
        architecture=descriptor.architecture.name,
        path=path,
        sha256=file_sha256(path),
        device=device,
    )


def check_image_model(descriptor, path: Path) -> None:
    """Refuse a model that is not a 3-channel RGB super-resolution model (inpainting, faces, grayscale)."""
    name = descriptor.architecture.name
    if not isinstance(descriptor, import_spandrel().ImageModelDescriptor) or descriptor.purpose != "SR":
        raise InvalidParameterError(
            f"{path.name} is a {name} model for {descriptor.purpose}, not super-resolution; "
            f"use a super-resolution model ({KNOWN_ARCHITECTURES}, ...)"
        )
    if descriptor.input_channels != 3 or descriptor.output_channels != 3:
        raise InvalidParameterError(
            f"{path.name} is a {name} model for {descriptor.input_channels}-channel input and "
            f"{descriptor.output_channels}-channel output, not RGB; use an RGB super-resolution model"
        )


def check_scale(model: SuperResolution, scale: int) -> None:
    """Refuse a `scale` other than the model's own."""
    if scale != model.scale:
        raise InvalidParameterError(
            f"{model.path.name} is a {model.scale}x model and cannot upscale {scale}x; "
            f"use --scale {model.scale}"
        )
