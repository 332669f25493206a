"""Fidelity to the conditioning image: PSNR and SSIM of video frames against the fitted input.

- psnr = 10 log10(255^2 / MSE), MSE over all pixels and RGB channels of 8-bit images. Unit: dB;
  identical images give math.inf.
- ssim: Wang et al. (2004) SSIM on BT.601 luma (0..255, not rounded), Gaussian window 11x11 with
  sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255, averaged over the positions where the whole window fits in
  the image (the whole map for images 10 px or less on a side). Unit: index in -1..1, 1 for identical images.
- fidelity: psnr and ssim of frame 0 against the reference (`psnr_first`, `ssim_first`) and their means
  over all frames (`psnr_mean`, `ssim_mean`); psnr_mean is math.inf when any frame equals the reference.

Images are PIL images, (H, W, 3) uint8 arrays or (3, H, W) float tensors or arrays in [0, 1].
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import cv2
import numpy as np
import PIL.Image

from svdlab.media import frames_to_uint8

if TYPE_CHECKING:
    import torch

    ImageLike = PIL.Image.Image | np.ndarray | torch.Tensor

SSIM_WINDOW = (11, 11)
SSIM_SIGMA = 1.5
SSIM_C1 = (0.01 * 255) ** 2
SSIM_C2 = (0.03 * 255) ** 2


def image_to_uint8(image: ImageLike) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a PIL image, an (H, W, 3) uint8 array or a (3, H, W) float in [0, 1]."""
    if isinstance(image, PIL.Image.Image):
        return np.asarray(image.convert("RGB"))
    return frames_to_uint8(image[None])[0]


def same_size_pair(a: ImageLike, b: ImageLike) -> tuple[np.ndarray, np.ndarray]:
    """Both images as (H, W, 3) uint8; a ValueError if their sizes differ."""
    first, second = image_to_uint8(a), image_to_uint8(b)
    if first.shape != second.shape:
        sizes = " and ".join(f"{image.shape[1]}x{image.shape[0]}" for image in (first, second))
        raise ValueError(f"images differ in size: {sizes}; compare frames with the fitted conditioning image")
    return first, second


def psnr(a: ImageLike, b: ImageLike) -> float:
    """Peak signal-to-noise ratio of two 8-bit RGB images in dB; math.inf when they are identical."""
    first, second = same_size_pair(a, b)
    mse = float(np.mean(np.square(first.astype(np.float64) - second)))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def ssim(a: ImageLike, b: ImageLike) -> float:
    """Structural similarity (Wang et al.) of two images' luma; 1.0 when they are identical."""
    x, y = (
        cv2.cvtColor(image.astype(np.float32), cv2.COLOR_RGB2GRAY).astype(np.float64)
        for image in same_size_pair(a, b)
    )

    def blur(values: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(values, SSIM_WINDOW, SSIM_SIGMA)

    mean_x, mean_y = blur(x), blur(y)
    var_x = blur(x * x) - mean_x * mean_x
    var_y = blur(y * y) - mean_y * mean_y
    cov = blur(x * y) - mean_x * mean_y
    index = ((2 * mean_x * mean_y + SSIM_C1) * (2 * cov + SSIM_C2)) / (
        (mean_x**2 + mean_y**2 + SSIM_C1) * (var_x + var_y + SSIM_C2)
    )
    margin = SSIM_WINDOW[0] // 2
    if min(index.shape) > 2 * margin:
        index = index[margin:-margin, margin:-margin]
    return float(index.mean())


def fidelity(frames: np.ndarray | torch.Tensor, reference: ImageLike) -> dict[str, float]:
    """PSNR and SSIM of the first frame and on average over all frames against the reference image."""
    pixels = frames_to_uint8(frames)
    target = image_to_uint8(reference)
    if target.shape != pixels.shape[1:]:
        raise ValueError(
            f"the reference is {target.shape[1]}x{target.shape[0]} but the frames are "
            f"{pixels.shape[2]}x{pixels.shape[1]}; pass the fitted conditioning image"
        )
    psnrs = [psnr(frame, target) for frame in pixels]
    ssims = [ssim(frame, target) for frame in pixels]
    return {
        "psnr_first": psnrs[0],
        "ssim_first": ssims[0],
        "psnr_mean": float(np.mean(psnrs)),
        "ssim_mean": float(np.mean(ssims)),
    }
