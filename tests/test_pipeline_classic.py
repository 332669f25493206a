"""The classic SVD study script runs on svdlab's pipeline with only its import changed, frame for frame."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from svdlab.errors import SvdlabWarning
from svdlab.models.presets import SHIPPED_MODELS

EXAMPLES = Path(__file__).parent.parent / "examples"

# The classic study as people write it: two loops (motion buckets 120..360 at noise 0.1, noise 0.1..0.4 at
# bucket 120), seed 42, decode_chunk_size=8, the image resized to the model's size, frames[0] to numpy.
# Kept at the shipped demo model's own size (64x64) and at 1 step so that it runs in seconds on a CPU.
CLASSIC_SCRIPT = """
import numpy as np
import torch
from PIL import Image
{import_line}

pipe = StableVideoDiffusionPipeline.from_pretrained(MODEL, torch_dtype=torch.float32)
pipe.enable_model_cpu_offload()
pipe.set_progress_bar_config(disable=True)
image = Image.open(IMAGE).convert("RGB").resize((WIDTH, HEIGHT))

videos = {{}}
common = dict(height=HEIGHT, width=WIDTH, num_inference_steps=STEPS, decode_chunk_size=8)
for motion_bucket_id in [120, 180, 240, 300, 360]:
    result = pipe(image, generator=torch.manual_seed(42), motion_bucket_id=motion_bucket_id,
                  noise_aug_strength=0.1, **common)
    videos[("motion_bucket_id", motion_bucket_id)] = np.array([np.array(f) for f in result.frames[0]])
for noise_aug_strength in [0.1, 0.2, 0.3, 0.4]:
    result = pipe(image, generator=torch.manual_seed(42), motion_bucket_id=120,
                  noise_aug_strength=noise_aug_strength, **common)
    videos[("noise_aug_strength", noise_aug_strength)] = np.array([np.array(f) for f in result.frames[0]])
"""
SETTINGS = {
    "MODEL": str(SHIPPED_MODELS / "demo"),
    "IMAGE": str(EXAMPLES / "sprites" / "scene-1.png"),
    "WIDTH": 64,
    "HEIGHT": 64,
    "STEPS": 1,
}


def run_script(import_line: str, without_offload: bool = False) -> dict:
    script = CLASSIC_SCRIPT.format(import_line=import_line)
    if without_offload:
        script = script.replace("pipe.enable_model_cpu_offload()\n", "")
    namespace = dict(SETTINGS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SvdlabWarning)
        exec(compile(script, "classic_study.py", "exec"), namespace)
    return namespace["videos"]


def test_the_classic_study_script_gives_diffusers_frames_with_only_the_import_changed():
    accelerator = torch.cuda.is_available() or torch.backends.mps.is_available()
    ours = run_script("from svdlab import StableVideoDiffusionPipeline")
    if not accelerator:  # diffusers refuses model offload without an accelerator; svdlab warns and goes on
        with pytest.raises(RuntimeError, match="requires accelerator"):
            run_script("from diffusers import StableVideoDiffusionPipeline")
    theirs = run_script("from diffusers import StableVideoDiffusionPipeline", without_offload=not accelerator)
    assert list(ours) == list(theirs) and len(ours) == 9
    for key, video in ours.items():
        assert video.shape == theirs[key].shape == (8, 64, 64, 3) and video.dtype == np.uint8
        difference = np.abs(video.astype(int) - theirs[key].astype(int))
        assert difference.max() <= 1, key  # 8-bit rounding of float frames that agree within 1e-4
        assert (difference > 0).mean() < 1e-3, key
    assert np.abs(ours[("motion_bucket_id", 120)].astype(int) - ours[("motion_bucket_id", 360)]).max() > 10
