"""Shared fixtures: the tiny-random model, small test images, fast parameters."""

from __future__ import annotations

import warnings

import numpy as np
import PIL.Image
import pytest

from svdlab.errors import SvdlabWarning
from svdlab.models import load_model
from svdlab.params import make_params

FAST = {"steps": 3}


@pytest.fixture(scope="session")
def tiny_model():
    """The built-in tiny-random SVD on the CPU in float32."""
    return load_model("tiny-random", device="cpu", dtype="float32")


def make_image(seed: int = 0, width: int = 64, height: int = 48) -> PIL.Image.Image:
    """A smooth random RGB image (low-frequency colour blobs), different per seed."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((max(height // 8, 2), max(width // 8, 2), 3))
    image = PIL.Image.fromarray((coarse * 255).astype(np.uint8)).resize((width, height), PIL.Image.BICUBIC)
    return image


def params_for(model, **values):
    """Resolved parameters for the model, with out-of-training warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SvdlabWarning)
        return make_params(**{**FAST, **values}).resolved(model)
