"""Fitting images to the frame size: crop keeps the centre, pad adds black bars, stretch fills."""

from __future__ import annotations

import warnings

import numpy as np
import PIL.Image
import pytest

from svdlab.errors import InvalidParameterError, SvdlabWarning
from svdlab.media import FIT_MODES, fit_image
from svdlab.media.fit import warn_if_cropped_hard


def striped(width: int, height: int, vertical: bool) -> PIL.Image.Image:
    """Grey picture with a red stripe across the middle fifth (a column band if `vertical`)."""
    array = np.full((height, width, 3), 128, np.uint8)
    if vertical:
        array[:, width * 2 // 5 : width * 3 // 5] = (255, 0, 0)
    else:
        array[height * 2 // 5 : height * 3 // 5] = (255, 0, 0)
    return PIL.Image.fromarray(array)


def is_red(pixel) -> bool:
    return pixel[0] > 200 and pixel[1] < 60 and pixel[2] < 60


def is_grey(pixel) -> bool:
    return all(abs(int(value) - 128) < 20 for value in pixel)


def test_modes():
    assert FIT_MODES == ("crop", "pad", "stretch")


def test_crop_keeps_the_centre_of_a_wide_image():
    wide = striped(400, 100, vertical=True)  # 4:1, red band at x = 160..240
    fitted = fit_image(wide, 64, 64)
    assert fitted.size == (64, 64) and fitted.mode == "RGB"
    array = np.asarray(fitted)
    # the 100x100 centre (x = 150..250) is kept: red in x = 10..90 of it, i.e. 6.4..57.6 of 64
    assert all(is_red(array[32, x]) for x in (10, 32, 54))
    assert all(is_grey(array[32, x]) for x in (0, 3, 61, 63))


def test_crop_keeps_the_centre_of_a_tall_image():
    tall = striped(50, 300, vertical=False)  # red band at y = 120..180
    array = np.asarray(fit_image(tall, 40, 20, "crop"))
    assert array.shape == (20, 40, 3)
    # kept rows are y = 137.5..162.5, all inside the red band
    assert all(is_red(array[y, 20]) for y in range(20))


def test_pad_adds_black_bars_on_the_short_sides():
    wide = PIL.Image.new("RGB", (200, 100), (255, 255, 255))
    array = np.asarray(fit_image(wide, 64, 64, "pad"))
    assert array.shape == (64, 64, 3)
    assert np.all(array[:15] == 0) and np.all(array[-15:] == 0)
    assert np.all(array[17:47] == 255)
    tall = PIL.Image.new("RGB", (50, 100), (255, 255, 255))
    array = np.asarray(fit_image(tall, 64, 64, "pad"))
    assert np.all(array[:, :15] == 0) and np.all(array[:, -15:] == 0)
    assert np.all(array[:, 17:47] == 255)


def test_pad_with_the_same_aspect_has_no_bars():
    array = np.asarray(fit_image(PIL.Image.new("RGB", (128, 64), (200, 10, 10)), 64, 32, "pad"))
    assert np.all(array == (200, 10, 10))


def test_stretch_fills_the_frame():
    fitted = fit_image(striped(400, 100, vertical=True), 64, 64, "stretch")
    array = np.asarray(fitted)
    assert fitted.size == (64, 64)
    assert is_grey(array[10, 2]) and is_grey(array[10, 61])
    assert is_red(array[10, 32]) and not is_red(array[10, 22])  # band stays at 2/5..3/5 of the width


@pytest.mark.parametrize("mode", FIT_MODES)
def test_exact_size_is_a_pixel_identical_copy(mode):
    rng = np.random.default_rng(0)
    source = PIL.Image.fromarray(rng.integers(0, 256, (48, 64, 3), np.uint8))
    fitted = fit_image(source, 64, 48, mode)
    assert fitted is not source
    assert fitted.tobytes() == source.tobytes()


def test_upscales_small_images():
    fitted = fit_image(PIL.Image.new("RGB", (8, 6), (10, 20, 30)), 64, 48)
    assert fitted.size == (64, 48)
    assert np.all(np.asarray(fitted) == (10, 20, 30))


def test_bad_mode_and_size():
    image = PIL.Image.new("RGB", (8, 8))
    allowed = r"fit='zoom' is not allowed: choose one of crop, pad, stretch$"
    with pytest.raises(InvalidParameterError, match=allowed):
        fit_image(image, 4, 4, "zoom")
    with pytest.raises(InvalidParameterError, match=r"size 0x4 is not allowed"):
        fit_image(image, 0, 4)


def test_cropping_away_more_than_a_quarter_warns_and_names_the_image():
    with pytest.warns(SvdlabWarning, match=r"wide.png: --fit crop cuts away 44% of the image to reach 64x64"):
        warn_if_cropped_hard("wide.png", (160, 90), 64, 64, "crop")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_cropped_hard("square-ish.png", (100, 90), 64, 64, "crop")  # 10 % cut
        warn_if_cropped_hard("wide.png", (160, 90), 64, 64, "pad")
        warn_if_cropped_hard("wide.png", (160, 90), 1024, 576, "crop")  # the same aspect
