"""Users' own super-resolution weights through spandrel, tiled upscaling and temporal stabilisation."""

from __future__ import annotations

import hashlib
import importlib.util
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from svdlab.errors import InvalidParameterError, ModelNotAvailableError
from svdlab.metrics import psnr
from svdlab.metrics.temporal import flicker, warp_error
from svdlab.post.sr_model import check_scale, import_spandrel, load_sr_model
from svdlab.post.stabilise import stabilise
from svdlab.post.tiles import tiled
from tests.synthetic_videos import pan

NO_TORCHVISION = importlib.util.find_spec("torchvision") is None


@pytest.fixture(scope="module")
def compact(tmp_path_factory):
    """A 2x Real-ESRGAN Compact with seeded random weights, and its weights saved as safetensors."""
    import_spandrel()
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    net = Compact(num_in_ch=3, num_out_ch=3, num_feat=16, num_conv=2, upscale=2).eval()
    path = tmp_path_factory.mktemp("sr") / "compact-2x.safetensors"
    save_file(net.state_dict(), path)
    return net, path


def video(height: int = 20, width: int = 24, frames: int = 3) -> torch.Tensor:
    """Random (T, 3, H, W) frames in [0, 1]."""
    return torch.rand(frames, 3, height, width, generator=torch.Generator().manual_seed(1))


def nearest(frames: torch.Tensor) -> torch.Tensor:
    """Frames enlarged 2x by repeating pixels: every output pixel depends on one input pixel only."""
    return torch.nn.functional.interpolate(frames, scale_factor=2, mode="nearest")


@pytest.mark.skipif(not NO_TORCHVISION, reason="torchvision is installed, so no placeholder is lent")
def test_spandrel_imports_without_leaving_a_fake_torchvision():
    spandrel = import_spandrel()
    assert "Compact" in spandrel.MAIN_REGISTRY
    assert not any(name.split(".")[0] == "torchvision" for name in sys.modules)
    assert importlib.util.find_spec("torchvision") is None
    lama = sys.modules["spandrel.architectures.LaMa.__arch.LaMa"]
    with pytest.raises(ModelNotAvailableError, match="pip install torchvision"):
        lama.rotate(torch.zeros(1, 3, 4, 4), 0.0)


def test_missing_spandrel_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "spandrel", None)
    with pytest.raises(ModelNotAvailableError, match=r"pip install spandrel"):
        import_spandrel()


def test_users_weights_are_what_runs(compact):
    net, path = compact
    model = load_sr_model(path, device="cpu")
    frames = video()
    out = model(frames)
    with torch.no_grad():
        direct = net(frames).clamp(0, 1)
    assert (model.architecture, model.scale) == ("RealESRGAN Compact", 2)
    assert out.shape == (3, 3, 40, 48) and out.dtype == torch.float32
    assert torch.allclose(out, direct, atol=1e-5, rtol=0)
    described = model.describe(tile=8)
    assert described["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert described | {"sha256": None} == {
        "architecture": "RealESRGAN Compact",
        "scale": 2,
        "file": "compact-2x.safetensors",
        "sha256": None,
        "device": "cpu",
        "dtype": "float32",
        "tile": 8,
    }


def test_tiles_blend_into_the_untiled_output(compact):
    model = load_sr_model(compact[1], device="cpu")
    frames = video()
    whole, pieces = model(frames), model(frames, tile=8)
    difference = (pieces - whole).abs()
    # The net sees 4 input px around each pixel, so output near the tiles' inner edges (4 px overlap at
    # tile 8) differs; measured: max 0.027, mean 0.0037 on a [0, 1] scale.
    assert pieces.shape == whole.shape
    assert difference.max() < 0.04 and difference.mean() < 0.006


@pytest.mark.parametrize(("tile", "overlap"), [(8, 8), (8, 2), (9, 4), (16, 8), (5, 0), (1, 8)])
def test_tiling_a_pointwise_upscale_changes_nothing(tile, overlap):
    frames = video(height=21, width=30, frames=2)
    out = tiled(nearest, frames, 2, tile=tile, overlap=overlap)
    assert torch.allclose(out, nearest(frames), atol=1e-5, rtol=0)


def test_small_frames_and_no_tile_run_once():
    calls = []

    def run(frames):
        calls.append(frames.shape)
        return nearest(frames)

    tiled(run, video(), 2)
    tiled(run, video(), 2, tile=24)
    assert calls == [(3, 3, 20, 24)] * 2
    with pytest.raises(InvalidParameterError, match="tile=0"):
        tiled(run, video(), 2, tile=0)


def test_pickle_weights_need_allow_pickle(compact, tmp_path):
    net, path = compact
    pickled = tmp_path / "compact-2x.pth"
    torch.save(net.state_dict(), pickled)
    with pytest.raises(InvalidParameterError, match=r"safetensors, or pass --allow-pickle"):
        load_sr_model(pickled, device="cpu")
    frames = video()
    out = load_sr_model(pickled, allow_pickle=True, device="cpu")(frames)
    assert torch.equal(out, load_sr_model(path, device="cpu")(frames))


def test_unknown_and_broken_files_are_refused(tmp_path):
    unrelated = tmp_path / "unrelated.safetensors"
    save_file({"foo.weight": torch.zeros(4, 4)}, unrelated)
    with pytest.raises(InvalidParameterError, match="not a super-resolution architecture spandrel knows"):
        load_sr_model(unrelated, device="cpu")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not weights" * 10)
    with pytest.raises(InvalidParameterError, match="broken.safetensors cannot be read as model weights"):
        load_sr_model(broken, device="cpu")
    with pytest.raises(InvalidParameterError, match="missing.safetensors does not exist"):
        load_sr_model(tmp_path / "missing.safetensors", device="cpu")


def test_scale_must_be_the_models(compact):
    model = load_sr_model(compact[1], device="cpu")
    check_scale(model, 2)
    with pytest.raises(InvalidParameterError, match=r"compact-2x.safetensors is a 2x model .*use --scale 2$"):
        check_scale(model, 4)


def test_stabilising_calms_per_frame_noise_without_losing_the_picture():
    clean = pan(2)
    rng = np.random.default_rng(0)
    jitter = rng.choice([-3.0, 3.0], size=len(clean))[:, None, None, None]
    noisy = np.clip(clean + rng.normal(0, 6, clean.shape) + jitter, 0, 255) / 255
    frames = torch.from_numpy(noisy.astype(np.float32)).permute(0, 3, 1, 2)
    truth = torch.from_numpy(clean.astype(np.float32) / 255).permute(0, 3, 1, 2)
    steady = stabilise(frames, strength=0.5)

    def mean_psnr(video: torch.Tensor) -> float:
        return float(np.mean([psnr(frame, true) for frame, true in zip(video, truth)]))

    # Measured: warp error 0.0280 -> 0.0127, flicker 2.16 -> 1.49 levels, PSNR 31.6 -> 35.4 dB.
    assert steady.shape == frames.shape and steady.dtype == torch.float32
    assert warp_error(steady) < 0.6 * warp_error(frames)
    assert flicker(steady) < 0.8 * flicker(frames)
    assert mean_psnr(steady) > mean_psnr(frames) + 2
    assert torch.equal(stabilise(frames, strength=0), frames)
    with pytest.raises(InvalidParameterError, match="strength=1"):
        stabilise(frames, strength=1)
