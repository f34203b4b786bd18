"""Reading a config: YAML file → environment overrides → validated :class:`PlatformConfig`.

Every way a config can be broken is a :class:`~mlplatform.errors.ConfigError` with one line
naming the file or variable: missing, a directory, not UTF-8, not YAML, not a mapping, an
unknown key or a wrong type (the CLI prints it and exits 2).
"""

from __future__ import annotations

import os
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from mlplatform.config.platform import PlatformConfig, format_validation_error, validate_config
from mlplatform.errors import ConfigError

ENV_PREFIX = "MLPLATFORM__"
#: Values an optional string field reads as None (YAML's null spellings).
_NULLS = ("", "~", "null", "Null", "NULL")


def apply_env_overrides(raw: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Set ``raw[section][field]`` from each ``MLPLATFORM__SECTION__FIELD`` variable.

    A value is parsed as YAML (``0.1``, ``true``, ``[a, b]``) unless the field takes a
    string, which keeps the text as written (an md5 of digits stays a string).

    >>> apply_env_overrides({}, {"MLPLATFORM__DATA__VERSION": "12345678901234567890123456789012"})
    {'data': {'version': '12345678901234567890123456789012'}}
    """
    out: dict[str, Any] = dict(raw)
    for key, value in sorted(env.items()):
        if not key.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in key[len(ENV_PREFIX) :].split("__") if p]
        if not path:
            continue
        node = out
        for part in path[:-1]:
            child = node.get(part)
            node[part] = dict(child) if isinstance(child, dict) else {}
            node = node[part]
        node[path[-1]] = env_value(key, value, _field_type(path))
    return out


def env_value(key: str, text: str, annotation: Any) -> Any:
    """The value of variable ``key`` for a field of type ``annotation`` (None: unknown field)."""
    kinds = _kinds(annotation)
    if kinds and kinds <= {str, type(None)}:
        return None if type(None) in kinds and text in _NULLS else text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{key}: not valid YAML: {_yaml_problem(exc)}") from None


def _field_type(path: list[str]) -> Any:
    """The annotation of the config field at ``path``; None when no such field exists."""
    model: Any = PlatformConfig
    for part in path:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(part)
        if field is None:
            return None
        model = field.annotation
    return model


def _kinds(annotation: Any) -> set[type]:
    """The Python types a field accepts, with Path and string Literals counted as ``str``."""
    if annotation is None:
        return set()
    if annotation is Path or annotation is str:
        return {str}
    if annotation is type(None):
        return {type(None)}
    origin = get_origin(annotation)
    if origin is Literal:
        return {str if isinstance(a, str) else object for a in get_args(annotation)}
    if origin is Union or origin is types.UnionType:
        return {k for arg in get_args(annotation) for k in _kinds(arg) or {object}}
    return {object}


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one line: the problem and where it is."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split())


def read_yaml(path: Path) -> Any:
    """The parsed YAML of a config file; :class:`ConfigError` naming what is wrong with it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> PlatformConfig:
    """Read a YAML config, apply environment overrides and validate it; a value an
    ``MLPLATFORM__`` variable set is blamed on that variable, not on the file."""
    p = Path(path)
    raw = read_yaml(p)
    if not isinstance(raw, dict):
        return validate_config(raw, str(p))
    env = os.environ if env is None else env
    try:
        return PlatformConfig.model_validate(apply_env_overrides(raw, env))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, _blame(str(p), env))) from None


def _blame(source: str, env: Mapping[str, str]) -> Callable[[tuple[int | str, ...]], str]:
    """Who set the value at a location: the ``MLPLATFORM__`` variable whose path contains it
    (or lies inside it), else the file."""
    paths = {
        tuple(p.lower() for p in key[len(ENV_PREFIX) :].split("__") if p): key
        for key in env
        if key.startswith(ENV_PREFIX)
    }

    def source_of(loc: tuple[int | str, ...]) -> str:
        where = tuple(str(part) for part in loc)
        for path, key in sorted(paths.items()):
            n = min(len(path), len(where))
            if path and where and path[:n] == where[:n]:
                return f"environment variable {key}"
        return source

    return source_of
