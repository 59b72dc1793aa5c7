"""Loading a typed config tree from TOML, the same way for kiosk and console."""

from __future__ import annotations

import re
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from protocol.errors import ConfigError, ConfigProblem

Tree = TypeVar("Tree", bound=BaseModel)


def load_tree(
    model: type[Tree],
    path: Path | None,
    *,
    env_prefix: str,
    env: Mapping[str, str],
    message: str = "{source}: {problems}",
) -> Tree:
    """Read `path` (None: defaults only), apply `<env_prefix><BLOCK>__<KEY>` overrides, make
    relative paths relative to the file, validate; ConfigError names each bad key and its line.

    `message` words the error from the file (or environment) and its problems."""
    source = path if path is not None else f"{env_prefix}* environment"
    text = "" if path is None else _read(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        line = _line_of_decode_error(str(err))
        problem = ConfigProblem("(syntax)", str(err), line)
        said = message.format(source=source, problems=problem)
        raise ConfigError(said, problems=[problem]) from err
    from_env = apply_env(data, env, env_prefix)
    if path is not None:
        resolve_relative_paths(data, path_keys(model), path.parent)
    try:
        return model.model_validate(data)
    except ValidationError as err:
        lines = key_lines(text)
        tagged = tagged_blocks(model)
        problems = [_problem(e, lines, from_env, tagged) for e in err.errors()]
        summary = "; ".join(str(p) for p in problems)
        said = message.format(source=source, problems=summary)
        raise ConfigError(said, problems=problems) from err


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ConfigError(f"config file not found: {path}") from err
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file unreadable: {path}: {err}") from err


def _problem(
    error: Mapping[str, Any], lines: dict[str, int], from_env: dict[str, str], tagged: set[str]
) -> ConfigProblem:
    # Drop the discriminator tag pydantic inserts for tagged unions ("camera.files.fps").
    loc = [str(p) for p in error["loc"]]
    parts: list[str] = []
    for i, part in enumerate(loc):
        if i == 1 and loc[0] in tagged and len(loc) > 2:
            continue
        parts.append(part)
    key = ".".join(parts) or "(top)"
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key (not part of this block; check spelling and the block's type)"
    elif error["type"] == "missing":
        message = "required key is missing"
    if key in from_env:
        return ConfigProblem(key, f"{message} (from environment {from_env[key]})")
    line = None
    probe = parts[:]
    while probe and line is None:
        line = lines.get(".".join(probe))
        probe.pop()
    return ConfigProblem(key, message, line)


def _line_of_decode_error(message: str) -> int | None:
    match = re.search(r"line (\d+)", message)
    return int(match.group(1)) if match else None


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\.\"' ]+?)\s*=")


def key_lines(text: str) -> dict[str, int]:
    """Map every dotted key and table header to its line number (1-based)."""
    lines: dict[str, int] = {}
    table: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(raw)
        if header:
            table = [p.strip().strip("\"'") for p in header.group(1).split(".")]
            lines.setdefault(".".join(table), number)
            continue
        key = _KEY.match(raw)
        if key:
            parts = table + [p.strip().strip("\"'") for p in key.group(1).split(".")]
            for depth in range(len(table) + 1, len(parts) + 1):
                lines.setdefault(".".join(parts[:depth]), number)
    return lines


def apply_env(data: dict[str, Any], env: Mapping[str, str], prefix: str) -> dict[str, str]:
    """<prefix>WEB__PORT=9000 sets web.port; values are read as TOML when they parse as such.

    Returns the dotted keys set, each with the variable that set it."""
    applied: dict[str, str] = {}
    for name, raw in sorted(env.items()):
        if not name.startswith(prefix) or "__" not in name:
            continue
        path = [p.lower() for p in name[len(prefix) :].split("__") if p]
        if not path:
            continue
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[path[-1]] = _env_value(raw)
        applied[".".join(path)] = name
    return applied


def _env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _blocks(model: type[BaseModel]) -> dict[str, list[type[BaseModel]]]:
    """Each top-level block with the model(s) it may hold (several for a tagged union)."""
    blocks: dict[str, list[type[BaseModel]]] = {}
    for name, field in model.model_fields.items():
        members = [t for t in _types(field.annotation) if _is_model(t)]
        if members:
            blocks[name] = members
    return blocks


def _types(annotation: Any) -> list[Any]:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return [t for arg in typing.get_args(annotation) for t in _types(arg)]
    return [annotation]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def tagged_blocks(model: type[BaseModel]) -> set[str]:
    return {name for name, members in _blocks(model).items() if len(members) > 1}


def path_keys(model: type[BaseModel]) -> set[tuple[str, str]]:
    """(block, key) of every Path-typed key, in any member of a tagged block."""
    return {
        (block, key)
        for block, members in _blocks(model).items()
        for member in members
        for key, field in member.model_fields.items()
        if Path in _types(field.annotation)
    }


def resolve_relative_paths(
    data: dict[str, Any], keys: set[tuple[str, str]], base: Path
) -> dict[str, Any]:
    """Relative paths in a config file are relative to that file, not to the cwd."""
    for section, key in keys:
        block = data.get(section)
        if isinstance(block, dict) and isinstance(block.get(key), str):
            value = Path(block[key]).expanduser()
            if not value.is_absolute():
                block[key] = str((base / value).resolve())
    return data
