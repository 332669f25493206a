"""The planner: a sweep spec expanded into keyed jobs, duplicates collapsed."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import PIL.Image

from svdlab.engine import Job
from svdlab.experiments.spec import SweepSpec, expand_images, params_from
from svdlab.media import describe_source, fit_image, load_image, source_stem
from svdlab.media.fit import warn_if_cropped_hard
from svdlab.media.manifest import image_info
from svdlab.params import params_identity


@dataclass
class PlannedJob:
    """One video of a sweep: its key, image, resolved parameters and the swept values that made it."""

    key: str
    stem: str
    info: dict
    image: PIL.Image.Image
    params: object
    swept: dict = field(default_factory=dict)

    @property
    def source(self) -> str:
        """The image's name as the spec gave it."""
        return self.info["source"]

    def engine_job(self) -> Job:
        """This job as the engine takes it (tagged with itself)."""
        return Job(image=self.image, params=self.params, tag=self)


def model_identity(model) -> dict:
    """What makes two runs of a model the same: hub id and revision, or the weights' hash; and the dtype."""
    described = model.describe()
    if model.source == "hub":
        identity = {"repo": described["location"], "revision": described["revision"]}
    else:
        identity = {"weights_sha256": described["weights_sha256"]}
    return {**identity, "dtype": described["dtype"]}


def job_key(identity: dict, pixels_sha256: str, params) -> str:
    """A stable key from the model identity, the image's pixels and every parameter."""
    payload = json.dumps(
        {"model": identity, "image": pixels_sha256, "params": params_identity(params.model_dump())},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def plan_sweep(spec: SweepSpec, model, base: Path) -> list[PlannedJob]:
    """Every (image, grid point) of the spec as a keyed job, in order; equal keys collapse to one."""
    identity = model_identity(model)
    combinations = spec.combinations()
    swept_keys = list(spec.axes())
    jobs: dict[str, PlannedJob] = {}
    for source in expand_images(spec, base):
        image, label = load_image(source), describe_source(source)
        infos: dict[str, dict] = {}
        fitted: dict[tuple, PIL.Image.Image] = {}
        for values in combinations:
            params = params_from(**values).resolved(model)
            if params.fit not in infos:
                infos[params.fit] = image_info(label, image, params.fit)
            key = job_key(identity, infos[params.fit]["pixels_sha256"], params)
            if key in jobs:
                continue
            shape = (params.width, params.height, params.fit)
            if shape not in fitted:
                warn_if_cropped_hard(label, image.size, *shape)
                fitted[shape] = fit_image(image, *shape)
            jobs[key] = PlannedJob(
                key=key,
                stem=source_stem(source),
                info=infos[params.fit],
                image=fitted[shape],
                params=params,
                swept={name: values[name] for name in swept_keys},
            )
    return list(jobs.values())
