"""Parameter validation: impossible values fail naming the field; untrained values warn and run."""

import warnings

import pytest

from svdlab.errors import InvalidParameterError, SvdlabWarning
from svdlab.models import PRESETS
from svdlab.params import make_params, parse_size


class FakeModel:
    """Just what resolution needs: a preset and a size multiple."""

    def __init__(self, preset="svd-xt", multiple=64):
        self.preset = PRESETS[preset]
        self.size_multiple = multiple


@pytest.mark.parametrize(
    ("values", "field", "allowed"),
    [
        ({"num_frames": 0}, "num_frames=0", "greater than or equal to 1"),
        ({"steps": -3}, "steps=-3", "greater than or equal to 1"),
        ({"fps": 0}, "fps=0", "greater than or equal to 1"),
        ({"motion_bucket_id": -1}, "motion_bucket_id=-1", "greater than or equal to 0"),
        ({"noise_aug_strength": -0.1}, "noise_aug_strength=-0.1", "greater than or equal to 0"),
        ({"fit": "zoom"}, "fit='zoom'", "'crop', 'pad' or 'stretch'"),
        ({"decode_chunk_size": 0}, "decode_chunk_size=0", "greater than or equal to 1"),
    ],
)
def test_impossible_values_name_the_field_value_and_allowed_range(values, field, allowed):
    with pytest.raises(InvalidParameterError) as caught:
        make_params(**values)
    assert field in str(caught.value) and allowed in str(caught.value)


def test_defaults_come_from_the_preset():
    params = make_params().resolved(FakeModel("svd"))
    assert (params.num_frames, params.width, params.height, params.steps) == (14, 1024, 576, 25)
    assert (params.fps, params.motion_bucket_id, params.noise_aug_strength) == (7, 127, 0.02)
    assert params.decode_chunk_size == 14
    assert make_params(num_frames=5).resolved(FakeModel("svd-xt")).decode_chunk_size == 5


def test_sizes_the_model_cannot_take_fail_with_nearby_choices():
    with pytest.raises(InvalidParameterError, match="width=1000 is not a multiple of 64.*try 960 or 1024"):
        make_params(width=1000, height=576).resolved(FakeModel())
    with pytest.raises(InvalidParameterError, match="size='1024' is not WIDTHxHEIGHT"):
        parse_size("1024")
    assert parse_size("1024x576") == (1024, 576)


@pytest.mark.parametrize(
    ("values", "phrase"),
    [
        ({"motion_bucket_id": 300}, "motion_bucket_id=300 is above 255"),
        ({"noise_aug_strength": 0.4}, "noise_aug_strength=0.4 is above 0.15"),
        ({"fps": 60}, "fps=60 is outside 5..30"),
        ({"fps": 3}, "fps=3 is outside 5..30"),
        ({"width": 768, "height": 768}, "size 768x768 differs from 1024x576"),
    ],
)
def test_values_outside_training_warn_and_run(values, phrase):
    with pytest.warns(SvdlabWarning, match=phrase):
        params = make_params(**values).resolved(FakeModel())
    for key, value in values.items():
        assert getattr(params, key) == value


def test_trained_values_do_not_warn_and_tiny_model_has_no_trained_size():
    with warnings.catch_warnings():
        warnings.simplefilter("error", SvdlabWarning)
        make_params(motion_bucket_id=255, noise_aug_strength=0.15, fps=30).resolved(FakeModel())
        make_params(width=32, height=32).resolved(FakeModel("tiny-random", 4))
