"""Fit an image to the model's frame size: crop to cover, pad to contain, or stretch."""

from __future__ import annotations

import warnings

import PIL.Image

from svdlab.errors import InvalidParameterError, SvdlabWarning

FIT_MODES = ("crop", "pad", "stretch")
CROP_NOTICE_SHARE = 0.25  # cropping away more than this share of an image's area earns a warning
LANCZOS = PIL.Image.Resampling.LANCZOS


def fit_image(image: PIL.Image.Image, width: int, height: int, mode: str = "crop") -> PIL.Image.Image:
    """Resize `image` to width x height by centre-cropping (crop), black bars (pad) or stretching."""
    if mode not in FIT_MODES:
        raise InvalidParameterError(f"fit={mode!r} is not allowed: choose one of {', '.join(FIT_MODES)}")
    if width < 1 or height < 1:
        raise InvalidParameterError(f"size {width}x{height} is not allowed: use sides of 1 pixel or more")
    if image.size == (width, height):
        return image.copy()
    if mode == "stretch":
        return image.resize((width, height), LANCZOS)
    if mode == "crop":
        return image.resize((width, height), LANCZOS, box=_centre_box(image.size, width, height))
    scale = min(width / image.width, height / image.height)
    inner = (
        min(width, max(1, round(image.width * scale))),
        min(height, max(1, round(image.height * scale))),
    )
    canvas = PIL.Image.new(image.mode, (width, height))
    canvas.paste(image.resize(inner, LANCZOS), ((width - inner[0]) // 2, (height - inner[1]) // 2))
    return canvas


def warn_if_cropped_hard(name: str, size: tuple[int, int], width: int, height: int, mode: str) -> None:
    """Warn when crop mode cuts away more than a quarter of an image to reach width x height."""
    if mode != "crop":
        return
    left, top, right, bottom = _centre_box(size, width, height)
    cut = 1 - (right - left) * (bottom - top) / (size[0] * size[1])
    if cut > CROP_NOTICE_SHARE:
        warnings.warn(
            f"{name}: --fit crop cuts away {cut:.0%} of the image to reach {width}x{height}; "
            "--fit pad keeps all of it",
            SvdlabWarning,
            stacklevel=2,
        )


def _centre_box(size: tuple[int, int], width: int, height: int) -> tuple[float, float, float, float]:
    """The centred source region with the target's aspect; resizing it = cover-resize then centre-crop."""
    source_width, source_height = size
    if source_width * height > source_height * width:
        box_width = source_height * width / height
        left = (source_width - box_width) / 2
        return (left, 0.0, left + box_width, float(source_height))
    box_height = source_width * height / width
    top = (source_height - box_height) / 2
    return (0.0, top, float(source_width), top + box_height)
