"""What the studio accepts: uploaded images, and sweep specs (TOML or JSON) planned into queue rows.

Images reach the file system only as uploads: each is decoded by the same loader as `svdlab generate`,
saved as PNG under the runs folder's `uploads/` named by its pixels' hash, and named by that id. A spec's
images must be such ids, those files, or http(s) URLs (downloaded and saved as uploads); any other path is
refused, so no request reads a file outside the runs folder.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import PIL.Image
import tomli_w

from svdlab.errors import InvalidParameterError, SvdlabWarning
from svdlab.experiments.planner import PlannedJob, plan_sweep
from svdlab.experiments.spec import SweepSpec
from svdlab.media import atomic_path, describe_source, fit_image, load_image, source_stem
from svdlab.media.images import decode_image
from svdlab.media.manifest import image_info
from svdlab.params import GenerationParams
from svdlab.tomlconfig import parse_toml, validate

UPLOADS = "uploads"
UPLOAD_ID = re.compile(r"^[0-9a-f]{16}$")


@dataclass
class Submission:
    """A planned submission: the experiment, its spec, the queue rows to add and any warnings."""

    experiment: str
    spec: SweepSpec
    rows: list[dict]
    warnings: list[str]


def upload_path(runs_dir: Path, upload_id: str) -> Path:
    """Where the upload with this id lives; InvalidParameterError if the id is malformed."""
    if not UPLOAD_ID.match(upload_id):
        raise InvalidParameterError(f"{upload_id!r} is not an image id; upload the image to /api/images")
    return runs_dir / UPLOADS / f"{upload_id}.png"


def save_upload(runs_dir: Path, data: bytes, name: str, max_pixels: int) -> dict:
    """Decode uploaded bytes as an image and keep it as PNG; returns its id and size."""
    image = decode_image(data, f"upload {name!r}", max_pixels)
    return _keep(runs_dir, image)


def _keep(runs_dir: Path, image: PIL.Image.Image) -> dict:
    """Save an RGB image under uploads/ by the hash of its pixels (once); returns its id and size."""
    upload_id = hashlib.sha256(image.tobytes()).hexdigest()[:16]
    target = upload_path(runs_dir, upload_id)
    if not target.is_file():
        with atomic_path(target) as temp:
            image.save(temp, format="PNG")
    return {"id": upload_id, "width": image.width, "height": image.height}


def read_spec(body: bytes, content_type: str) -> dict:
    """A spec from a request body: JSON when the content type says so, else TOML."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidParameterError(f"the spec is not UTF-8 text (byte {error.start}); send UTF-8") from error
    if "json" in content_type:
        try:
            data = json.loads(text)
        except ValueError as error:
            raise InvalidParameterError(f"the spec is not valid JSON ({error}); fix the syntax") from error
    else:
        data = parse_toml(text, "spec")
    if not isinstance(data, dict):
        raise InvalidParameterError("the spec must be a table (TOML) or an object (JSON)")
    return data


def check_spec(data: dict, runs_dir: Path, model, max_pixels: int, max_bytes: int) -> SweepSpec:
    """The spec with a name, this server's model and its images as upload files; InvalidParameterError
    names what is wrong."""
    data = dict(data)
    if data.get("model") not in (None, model.name):
        raise InvalidParameterError(
            f"model={data['model']!r}: this server runs {model.name!r}; leave model out or start "
            f"`svdlab serve --model {data['model']}`"
        )
    if (data.get("trackers") or {}).get("wandb"):
        raise InvalidParameterError(
            "trackers: the studio does not log to W&B; run this spec with `svdlab sweep`"
        )
    data["model"] = model.name
    data.setdefault("name", _default_name())
    images = data.get("images")
    if not isinstance(images, list) or not images:
        raise InvalidParameterError("images: give a list of uploaded image ids or http(s) URLs")
    data["images"] = [str(_image_file(entry, runs_dir, max_pixels, max_bytes)) for entry in images]
    spec = validate(data, SweepSpec, "spec")
    try:
        spec_toml(spec)  # a JSON spec must have a TOML form, so that `svdlab sweep` can run it too
    except (TypeError, ValueError) as error:
        raise InvalidParameterError(
            f"spec: {error}; TOML has no null: leave such a value out to get the model's default"
        ) from error
    return spec


def _default_name() -> str:
    return f"studio-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def _image_file(entry: object, runs_dir: Path, max_pixels: int, max_bytes: int) -> Path:
    """The upload file a spec's image entry names (a URL is downloaded into uploads first, within the
    upload limits)."""
    if not isinstance(entry, str):
        raise InvalidParameterError(f"images: {entry!r} is not text; give an uploaded image id or a URL")
    if entry.lower().startswith(("http://", "https://")):
        image = load_image(entry, max_pixels=max_pixels, max_bytes=max_bytes)
        return upload_path(runs_dir, _keep(runs_dir, image)["id"])
    if UPLOAD_ID.match(entry):
        path = upload_path(runs_dir, entry)
    else:
        uploads = (runs_dir / UPLOADS).resolve()
        path = Path(entry) if Path(entry).is_absolute() else runs_dir / entry
        path = path.resolve()
        if path.parent != uploads:
            raise InvalidParameterError(
                f"images: {entry!r} is not an uploaded image; upload it to /api/images or give an http(s) URL"
            )
    if not path.is_file():
        raise InvalidParameterError(f"images: no uploaded image {entry!r}; upload it to /api/images first")
    return path.resolve()


def plan_submission(spec: SweepSpec, model, runs_dir: Path) -> Submission:
    """Plan the spec's jobs (keys as `svdlab sweep` makes them) into queue rows."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SvdlabWarning)
        jobs = plan_sweep(spec, model, runs_dir)
    rows = [
        {
            "key": job.key,
            "image": Path(job.source).stem,
            "file": str(Path(job.source).relative_to(runs_dir.resolve())),
            "params": job.params.model_dump(mode="json"),
            "swept": job.swept,
        }
        for job in jobs
    ]
    messages = list(dict.fromkeys(str(item.message) for item in caught if item.category is SvdlabWarning))
    return Submission(spec.name, spec, rows, messages)


def spec_toml(spec: SweepSpec) -> str:
    """The spec as the TOML `svdlab sweep` takes."""
    return tomli_w.dumps(spec.model_dump(mode="json", exclude_none=True, exclude={"trackers"}))


def job_from_row(row, runs_dir: Path) -> PlannedJob:
    """The planned job a queue row stands for, its image loaded and fitted again."""
    path = (runs_dir / row["file"]).resolve()
    image = load_image(path)
    params = GenerationParams(**json.loads(row["params"]))
    return PlannedJob(
        key=row["key"],
        stem=source_stem(path),
        info=image_info(describe_source(path), image, params.fit),
        image=fit_image(image, params.width, params.height, params.fit),
        params=params,
        swept=json.loads(row["swept"]),
    )
