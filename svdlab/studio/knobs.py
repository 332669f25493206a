"""The generation parameters as the page shows them: kind, the model's default, allowed range, one line of
help."""

from __future__ import annotations

import typing
import warnings

from svdlab.errors import SvdlabWarning
from svdlab.experiments.explain import PARAMETER_NOTES
from svdlab.media import VIDEO_FORMATS
from svdlab.params import GenerationParams


def model_knobs(model) -> dict:
    """The model's name and device, the output formats, and every parameter with its default and range."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SvdlabWarning)
        defaults = GenerationParams().resolved(model).model_dump(mode="json")
    schema = GenerationParams.model_json_schema()["properties"]
    return {
        "model": model.name,
        "device": str(model.device),
        "formats": list(VIDEO_FORMATS),
        "parameters": [_knob(name, schema[name], defaults[name]) for name in GenerationParams.model_fields],
    }


def _knob(name: str, schema: dict, default) -> dict:
    """One parameter's entry: kind, default, min, max, step or choices, help."""
    field = GenerationParams.model_fields[name]
    typed = next((option for option in schema.get("anyOf", [schema]) if option.get("type") != "null"), schema)
    knob = {
        "name": name,
        "default": "" if default is None else default,
        "help": PARAMETER_NOTES.get(name, ""),
    }
    if "enum" in typed or typing.get_origin(field.annotation) is typing.Literal:
        return {
            **knob,
            "kind": "choice",
            "choices": list(typed.get("enum") or typing.get_args(field.annotation)),
        }
    if typed.get("type") == "boolean":
        return {**knob, "kind": "choice", "choices": [False, True]}
    if typed.get("type") in ("integer", "number"):
        integer = typed["type"] == "integer"
        return {
            **knob,
            "kind": "int" if integer else "float",
            "min": typed.get("minimum", typed.get("exclusiveMinimum")),
            "max": typed.get("maximum"),
            "step": 1 if integer else 0.01,
        }
    return {**knob, "kind": "text", "placeholder": "START:END" if name == "guidance_interval" else ""}
