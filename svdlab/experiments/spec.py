"""Sweep specs: a TOML file naming a model, images, a grid of parameter lists and fixed values, and the
post-processing after sampling ([post]: interpolation and upscaling, each setting one value or a list to
vary)."""

from __future__ import annotations

import glob
import itertools
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from svdlab.errors import InvalidParameterError
from svdlab.experiments.store import DATABASE
from svdlab.params import GenerationParams, make_params, parse_size
from svdlab.tomlconfig import load_toml

PARAMETERS = (*GenerationParams.model_fields, "size")
POST_PARAMETERS = (
    "interpolate",
    "interpolate_factor",
    "upscale",
    "upscale_method",
    "upscale_model",
    "sr_model",
)


def _check_parameters(values: dict[str, Any], section: str) -> None:
    """Every key of a section names a generation parameter."""
    for key in values:
        if key not in PARAMETERS:
            raise ValueError(
                f"{section}.{key} is not a generation parameter; allowed: {', '.join(PARAMETERS)}"
            )


class OutputsSpec(BaseModel):
    """Where and how the videos are written."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["mp4", "webm", "gif", "webp", "png"] = "mp4"


class WandbSpec(BaseModel):
    """Weights & Biases tracking: project, entity and group of the runs."""

    model_config = ConfigDict(extra="forbid")

    project: str
    entity: str | None = None
    group: str | None = None


class TrackersSpec(BaseModel):
    """Trackers besides the local store, which is always on."""

    model_config = ConfigDict(extra="forbid")

    wandb: WandbSpec | None = None


class SweepSpec(BaseModel):
    """A parameter study: every combination of the grid's lists, for every image."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100)
    model: str = "demo"
    images: list[str] = Field(min_length=1)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    fixed: dict[str, Any] = Field(default_factory=dict)
    post: dict[str, Any] = Field(default_factory=dict)
    outputs: OutputsSpec = Field(default_factory=OutputsSpec)
    trackers: TrackersSpec = Field(default_factory=TrackersSpec)

    @field_validator("name")
    @classmethod
    def _not_a_store_file(cls, name: str) -> str:
        if name.lower().startswith(DATABASE.lower()):
            raise ValueError(
                f"name={name!r} clashes with the store's own files ({DATABASE}*); choose another"
            )
        return name

    @field_validator("grid")
    @classmethod
    def _grid_lists(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        _check_parameters(grid, "grid")
        for key, values in grid.items():
            if not values:
                raise ValueError(f"grid.{key} is an empty list; give at least one value")
            for index, value in enumerate(values):
                _check_value(f"grid.{key}[{index}]", key, value)
        return grid

    @field_validator("fixed")
    @classmethod
    def _fixed_values(cls, fixed: dict[str, Any]) -> dict[str, Any]:
        _check_parameters(fixed, "fixed")
        for key, value in fixed.items():
            _check_value(f"fixed.{key}", key, value)
        return fixed

    @field_validator("post")
    @classmethod
    def _post_values(cls, post: dict[str, Any], info) -> dict[str, Any]:
        for key, value in post.items():
            if key not in POST_PARAMETERS:
                raise ValueError(
                    f"post.{key} is not a post-processing setting; allowed: {', '.join(POST_PARAMETERS)}"
                )
            if key in info.data.get("grid", {}) or key in info.data.get("fixed", {}):
                raise ValueError(f"post.{key} is also in [grid] or [fixed]; give it in one place")
            values = value if isinstance(value, list) else [value]
            if not values:
                raise ValueError(f"post.{key} is an empty list; give at least one value")
            for index, item in enumerate(values):
                _check_value(f"post.{key}" + (f"[{index}]" if isinstance(value, list) else ""), key, item)
        return post

    def axes(self) -> dict[str, list[Any]]:
        """What varies: the grid's lists, then [post]'s lists."""
        return {**self.grid, **{key: value for key, value in self.post.items() if isinstance(value, list)}}

    def combinations(self) -> list[dict[str, Any]]:
        """Every point of the axes merged over the fixed values and [post]'s single values, in the axes' order
        (last key varies fastest)."""
        axes = self.axes()
        keys = list(axes)
        points = itertools.product(*(axes[key] for key in keys))
        fixed = {
            **self.fixed,
            **{key: value for key, value in self.post.items() if not isinstance(value, list)},
        }
        return [{**fixed, **dict(zip(keys, point))} for point in points]


def _check_value(where: str, key: str, value: Any) -> None:
    try:
        params_from(**{key: value})
    except InvalidParameterError as error:
        raise ValueError(f"{where}: {error}") from None


def params_from(**values: Any) -> GenerationParams:
    """GenerationParams from spec values, where `size` may stand for width and height as 'WxH'."""
    if "size" in values:
        values["width"], values["height"] = parse_size(str(values.pop("size")))
    return make_params(**values)


def load_spec(path: str | Path, model: str | None = None) -> SweepSpec:
    """Read and validate a sweep spec (with `model` instead of its own, when given); a mistake raises
    InvalidParameterError naming the key."""
    spec = load_toml(path, SweepSpec, "sweep spec")
    if "sr_model" in spec.post:  # a file named in the spec lies relative to it, as its images do
        files = spec.post["sr_model"]
        relative = [str(Path(path).parent / item) for item in (files if isinstance(files, list) else [files])]
        spec.post["sr_model"] = relative if isinstance(files, list) else relative[0]
    return spec if model is None else spec.model_copy(update={"model": model})


def expand_images(spec: SweepSpec, base: Path) -> list[str]:
    """The spec's images as sources: URLs as given, paths relative to the spec, globs expanded in order."""
    sources: list[str] = []
    for entry in spec.images:
        if entry.lower().startswith(("http://", "https://")):
            sources.append(entry)
            continue
        pattern = entry if Path(entry).is_absolute() else str(base / entry)
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise InvalidParameterError(f"images: {entry!r} matches no file; check the pattern")
        sources.extend(matches)
    return list(dict.fromkeys(sources))
