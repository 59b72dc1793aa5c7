"""The contract's JSON Schemas, one copy, shipped as package data of `protocol`."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import files
from typing import Any

import jsonschema


@lru_cache(maxsize=32)
def load_schema(name: str) -> dict[str, Any]:
    """protocol/schemas/<name>.json, parsed."""
    text = files(__package__).joinpath(f"{name}.json").read_text(encoding="utf-8")
    return json.loads(text)


def validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        load_schema(name), format_checker=jsonschema.FormatChecker()
    )
