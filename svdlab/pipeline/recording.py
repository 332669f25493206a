"""Recording the videos a drop-in pipeline made, and writing them as a sweep spec for `svdlab sweep`."""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import PIL.Image
import tomli_w
import torch
from pydantic import ValidationError

from svdlab.engine.conditioning import image_digest
from svdlab.errors import InvalidParameterError, SvdlabWarning
from svdlab.experiments.spec import SweepSpec
from svdlab.media import atomic_path

SETTINGS = (
    "motion_bucket_id",
    "noise_aug_strength",
    "fps",
    "num_frames",
    "steps",
    "min_guidance",
    "max_guidance",
    "width",
    "height",
    "decode_chunk_size",
)


def fresh_seed(generator: object) -> int | None:
    """The seed of a CPU generator that drew nothing since seeding (a sweep can replay it), else None."""
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        return None
    seed = generator.initial_seed()
    if seed >= 2**63 or not torch.equal(
        torch.Generator().manual_seed(seed).get_state(), generator.get_state()
    ):
        return None
    return seed


@dataclass
class RecordedVideo:
    """One video a pipeline made: its input image as passed, its settings, its seed (None: not a seed's)."""

    image: PIL.Image.Image
    settings: dict
    seed: int | None


class CallRecording:
    """The videos a pipeline made while recording; `save_sweep_spec` turns them into a sweep spec."""

    def __init__(self, model_name: str | None):
        self.model_name = model_name
        self.videos: list[RecordedVideo] = []

    def add(self, image: PIL.Image.Image, params, seed: int | None) -> None:
        """Record one video."""
        self.videos.append(RecordedVideo(image, {key: getattr(params, key) for key in SETTINGS}, seed))

    def save_sweep_spec(self, path: str | Path, name: str | None = None, model: str | None = None) -> Path:
        """Write the recorded videos as a sweep spec TOML, their images in a folder beside it; return it.

        Settings that never changed go to [fixed], the others to [grid]; `svdlab sweep` runs every
        combination of the grid for every image, and a warning says when that is more than the calls made.
        """
        path = Path(path)
        replayable = [video for video in self.videos if video.seed is not None]
        if len(replayable) < len(self.videos):
            _warn(
                f"{len(self.videos) - len(replayable)} of the {len(self.videos)} recorded videos are left "
                f"out of {path.name}: their noise did not come from a fresh seed (no generator, a generator "
                "used before, several videos from one generator, a CUDA generator or latents=); pass "
                "generator=torch.manual_seed(n) to each call to make its video replayable"
            )
        if not replayable:
            raise InvalidParameterError(
                "no recorded video can be replayed from a seed, so there is no sweep to write; "
                "pass generator=torch.manual_seed(n) to each call"
            )
        model = model or self.model_name
        if model is None:
            raise InvalidParameterError(
                "this pipeline was built from components, so the spec cannot name its model: save it with "
                "pipe.save_pretrained(folder) and pass model=folder"
            )
        points = [{**video.settings, "seed": video.seed} for video in replayable]
        values: dict[str, list] = {}
        for point in points:
            for key, value in point.items():
                if value not in values.setdefault(key, []):
                    values[key].append(value)
        grid = {key: found for key, found in values.items() if len(found) > 1}
        fixed = {key: found[0] for key, found in values.items() if len(found) == 1}
        fixed["fit"] = "stretch"  # diffusers squashes each image to the frame size; so does the sweep
        images = _image_files(path, [video.image for video in replayable])
        spec = {
            "name": name or _spec_name(path),
            "model": model,
            "images": [f"{file.parent.name}/{file.name}" for file in images],
            "grid": grid,
            "fixed": fixed,
        }
        try:
            SweepSpec.model_validate(spec)
        except ValidationError as error:
            raise InvalidParameterError(f"cannot write {path}: {error.errors()[0]['msg']}") from error
        made = len(
            {(image_digest(video.image), tuple(point.items())) for video, point in zip(replayable, points)}
        )
        planned = len(images) * math.prod(len(found) for found in grid.values())
        if planned > made:
            _warn(
                f"{path.name} sweeps every combination of {', '.join(grid)}: {planned} videos, "
                f"of which your calls made {made}"
            )
        with atomic_path(path) as temporary:
            temporary.write_text(tomli_w.dumps(spec))
        return path


def _image_files(path: Path, images: list[PIL.Image.Image]) -> list[Path]:
    """Write each distinct image once as PNG into `<spec stem>-images/` beside the spec; return the paths."""
    folder = path.parent / f"{path.stem}-images"
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for image in images:
        digest = image_digest(image)
        if digest not in files:
            files[digest] = folder / f"image-{len(files) + 1}.png"
            with atomic_path(files[digest]) as temporary:
                image.save(temporary, format="PNG")
    return list(files.values())


def _spec_name(path: Path) -> str:
    """A sweep name from the spec's file name (letters, digits, '.', '_', '-')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("._-")[:100] or "pipeline-calls"


def _warn(message: str) -> None:
    warnings.warn(message, SvdlabWarning, stacklevel=3)
