"""TOML files validated by pydantic models, with one-line errors that name the offending key."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from svdlab.errors import InvalidParameterError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

Config = TypeVar("Config", bound=BaseModel)


def load_toml(path: str | Path, schema: type[Config], what: str) -> Config:
    """Read and validate a TOML file; a mistake raises InvalidParameterError naming the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise InvalidParameterError(f"{path}: no such {what}; check the path") from error
    except IsADirectoryError as error:
        raise InvalidParameterError(f"{path}: is a directory, not a {what}; pass the TOML file") from error
    except UnicodeDecodeError as error:
        raise InvalidParameterError(
            f"{path}: not UTF-8 text (byte {error.start}); save the {what} as UTF-8"
        ) from error
    except OSError as error:
        reason = error.strerror or str(error)
        raise InvalidParameterError(f"{path}: cannot read the {what} ({reason}); check the file") from error
    return validate(parse_toml(text, str(path)), schema, str(path))


def parse_toml(text: str, name: str) -> dict:
    """The table a TOML text holds; a syntax error raises InvalidParameterError naming `name`."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InvalidParameterError(f"{name}: not valid TOML ({error}); fix the syntax") from error


def validate(data: dict, schema: type[Config], name: str) -> Config:
    """`data` as `schema`; a mistake raises InvalidParameterError naming `name` and the key."""
    try:
        return schema(**data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] in ("extra_forbidden", "missing") and len(first["loc"]) == 1:
            allowed = ", ".join(schema.model_fields)
            message = f"{message.lower()}; the top-level keys are {allowed}"
        prefix = "" if message.startswith(where) else f"{where}: "
        raise InvalidParameterError(f"{name}: {prefix}{message}") from error
