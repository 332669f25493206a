"""Each memory mode gives the default frames within float tolerance."""

import pytest
import torch

from svdlab.engine import Job, VideoEngine
from svdlab.models import load_model
from tests.conftest import make_image, params_for
from tests.test_seed_compat import reference_frames


@pytest.fixture(scope="module")
def default_frames(tiny_model):
    (result,) = VideoEngine(tiny_model).run([Job(make_image(2), params_for(tiny_model))])
    return result.frames


@pytest.mark.parametrize(
    "memory", [{"offload": "model"}, {"offload": "sequential"}, {"forward_chunking": True}]
)
def test_memory_mode_gives_the_default_frames(memory, default_frames):
    model = load_model("tiny-random", device="cpu", **memory)
    assert model.memory == {"offload": "none", "forward_chunking": False, **memory}
    (result,) = VideoEngine(model).run([Job(make_image(2), params_for(model))])
    assert torch.allclose(result.frames, default_frames, atol=1e-5)


def test_decode_chunk_size(tiny_model, default_frames):
    # The temporal decoder mixes frames within a chunk, so a chunk smaller than the video changes the
    # frames (as in diffusers): the full chunk is the default, and every chunk size matches diffusers.
    image = make_image(2)
    full = params_for(tiny_model, decode_chunk_size=tiny_model.preset.num_frames)
    (result,) = VideoEngine(tiny_model).run([Job(image, full)])
    assert torch.equal(result.frames, default_frames)
    for chunk in (1, 2, 3):
        params = params_for(tiny_model, decode_chunk_size=chunk)
        (result,) = VideoEngine(tiny_model).run([Job(image, params)])
        reference = reference_frames(tiny_model, image, params)
        assert torch.allclose(result.frames, reference, atol=1e-4), chunk
