"""The drop-in pipeline's inputs: images in every form diffusers takes; settings once or per video."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import PIL.Image
import torch

from svdlab.errors import InvalidImageError, InvalidParameterError
from svdlab.media import load_image


def input_images(image: object) -> list[PIL.Image.Image]:
    """The call's images as RGB pictures: PIL images, paths or URLs, arrays (H, W, C) or batches
    (B, H, W, C), tensors (C, H, W) or batches (B, C, H, W) with values in [0, 1], or a list of those."""
    if isinstance(image, (list, tuple)):
        if not image:
            raise InvalidImageError("image is an empty list; pass at least one image")
        return [picture for item in image for picture in input_images(item)]
    if isinstance(image, torch.Tensor) and image.ndim == 4 and image.shape[0] > 1:
        return [load_image(item) for item in image]
    if isinstance(image, np.ndarray) and image.ndim == 4:
        return [load_image(item) for item in image]
    return [load_image(image)]


def per_video(name: str, value: object, videos: int, why: str) -> list:
    """One value per video: a single value repeated, or a list with exactly one value for each video."""
    if not isinstance(value, Sequence) or isinstance(value, str):
        return [value] * videos
    if len(value) != videos:
        raise InvalidParameterError(
            f"{name} has {len(value)} values but this call makes {videos} videos ({why}); "
            "give one value per video or a single value for all"
        )
    return list(value)
