"""svdlab.generate from Python: inputs of every kind, frames plus manifest, failures."""

import subprocess
import sys

import numpy as np
import pytest
import torch

import svdlab
from svdlab.errors import InvalidImageError, OutOfMemoryError
from tests.conftest import make_image


def test_generate_returns_frames_and_manifest_without_writing(tiny_model):
    (video,) = svdlab.generate(make_image(0), tiny_model, steps=2, motion_bucket_id=90, seed=3)
    assert video.frames.shape == (4, 3, 48, 64) and video.path is None
    assert 0 <= video.frames.min() and video.frames.max() <= 1
    assert video.manifest["params"]["motion_bucket_id"] == 90 and video.manifest["params"]["seed"] == 3
    assert video.source == "<PIL image 64x48>"


def test_every_in_memory_input_kind_gives_the_same_video(tiny_model):
    image = make_image(1)
    array = np.array(image)
    tensor = torch.from_numpy(array).permute(2, 0, 1).float() / 255
    videos = svdlab.generate([image, array, tensor, tensor[None]], tiny_model, steps=2, batch_size=4)
    assert len(videos) == 4
    for video in videos[1:]:
        assert torch.allclose(video.frames, videos[0].frames, atol=1e-5)


def test_bad_image_raises_before_any_work_unless_a_handler_is_given(tiny_model, tmp_path):
    missing = tmp_path / "missing.png"
    with pytest.raises(InvalidImageError, match="missing.png"):
        svdlab.generate([make_image(0), missing], tiny_model, steps=2)
    seen = []
    videos = svdlab.generate(
        [missing, make_image(0)], tiny_model, steps=2, on_image_error=lambda name, error: seen.append(name)
    )
    assert len(videos) == 1 and seen == [str(missing)]


def test_out_of_memory_keeps_finished_videos_and_says_what_to_do(tiny_model, tmp_path, monkeypatch):
    from svdlab.engine import VideoEngine

    original = VideoEngine.run_pack
    calls = []

    def fail_second_pack(self, pack, on_step=None):
        calls.append(pack)
        if len(calls) == 2:
            raise torch.OutOfMemoryError("CUDA out of memory")
        yield from original(self, pack, on_step)

    monkeypatch.setattr(VideoEngine, "run_pack", fail_second_pack)
    with pytest.raises(OutOfMemoryError, match=r"--offload model.*finished so far \(1\) are in"):
        svdlab.generate([make_image(0), make_image(1)], tiny_model, steps=2, batch_size=1, out=tmp_path)
    assert len(list(tmp_path.glob("*.mp4"))) == 1 and len(list(tmp_path.glob("*.json"))) == 1


def test_the_python_api_prints_no_library_chatter(tmp_path):
    make_image(0).save(tmp_path / "a.png")
    script = "import svdlab; svdlab.generate(['a.png'], model='demo', steps=1, out='out')"
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "out").glob("*.mp4"))) == 1
    for chatter in ("torchvision", "Loading pipeline components", "it/s]", "%|"):
        assert chatter not in done.stderr + done.stdout


def test_library_chatter_comes_back_when_asked(monkeypatch):
    from transformers.utils import logging as transformers_logging

    from svdlab.quiet import quiet_libraries

    level = transformers_logging.get_verbosity()
    try:
        transformers_logging.set_verbosity_info()
        monkeypatch.setenv("SVDLAB_LIBRARY_LOGS", "1")
        quiet_libraries()
        assert transformers_logging.get_verbosity() == transformers_logging.INFO
        monkeypatch.delenv("SVDLAB_LIBRARY_LOGS")
        quiet_libraries()
        assert transformers_logging.get_verbosity() == transformers_logging.ERROR
    finally:
        transformers_logging.set_verbosity(level)
