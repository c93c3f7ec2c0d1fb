"""Typed configuration: dataclasses loaded from YAML, validated before any work starts.

``load_config(PretrainConfig, "configs/pretrain/tiny_cpu.yaml", ["optim.lr=3e-4"])`` reads the
file, applies ``--set key=value`` overrides (values parsed as YAML), and builds the nested
dataclasses. An unknown key, a wrong type or a bad value raises :class:`ConfigError` naming the
full key (``optim.lr``) and what is allowed. String values may name environment variables,
``${MAST_STORAGE:-runs}`` (:func:`expand_environment`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the key."""


def _check_type(key: str, value: Any, annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _check_type(key, value, option)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not one of {list(args)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        items = [_check_type(f"{key}[{i}]", item, inner) for i, item in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if annotation is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        value_type = args[1] if len(args) == 2 else Any
        return {str(k): _check_type(f"{key}.{k}", v, value_type) for k, v in value.items()}
    if dataclasses.is_dataclass(annotation):
        return build(annotation, value, key)
    if annotation is Any:
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {annotation}")


_BOUNDS = {">": lambda v, b: v > b, ">=": lambda v, b: v >= b}


def require(section: Any, **rules: str) -> None:
    """Range checks of a config section: ``require(self, lr="> 0", batch_size=">= 1")``. The first
    key that breaks its rule fails, named with its rule and value (``lr: must be > 0, got -1.0``)."""
    for key, rule in rules.items():
        operator, bound = rule.split()
        value = getattr(section, key)
        if not _BOUNDS[operator](value, float(bound)):
            raise ConfigError(f"{key}: must be {rule}, got {value!r}")


def build(cls: type[T], data: Any, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, checking every key and type, then ``validate()``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(f"unknown key {where}{shown(unknown[0])}; allowed here: {sorted(fields)}")
    values = {}
    for name, field in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name in data:
            values[name] = _check_type(key, data[name], hints[name])
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key {key}")
    instance = cls(**values)
    validate = getattr(instance, "validate", None)
    if validate is not None:
        try:
            validate()
        except ConfigError as error:
            raise ConfigError(f"{prefix + '.' if prefix else ''}{error}") from None
    return instance


def shown(text: Any) -> str:
    """A key or value as an error message shows it: as typed, or quoted when it would break the line."""
    return str(text) if str(text).isprintable() else repr(text)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """``["optim.lr=3e-4", "run.name=x"]`` applied to a nested mapping (values parsed as YAML)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {shown(key)}: {shown(part)} is not a section")
        try:
            node[parts[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError as error:
            problem = " ".join(str(getattr(error, "problem", None) or error).split())
            raise ConfigError(f"--set {shown(key)}: {raw!r} is not a YAML value ({problem})") from None
    return data


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_environment(data: Any, prefix: str = "", environ: typing.Mapping[str, str] | None = None) -> Any:
    """``${NAME}`` and ``${NAME:-default}`` in string values replaced from the environment, so one
    config serves a laptop and a cluster (``storage: ${MAST_STORAGE:-runs}``). An unset variable
    without a default is an error naming the key. ``environ``: another environment than this process's."""
    environ = os.environ if environ is None else environ
    if isinstance(data, dict):
        return {key: expand_environment(value, f"{prefix}.{key}" if prefix else str(key), environ) for key, value in data.items()}
    if isinstance(data, list):
        return [expand_environment(value, f"{prefix}[{index}]", environ) for index, value in enumerate(data)]
    if not isinstance(data, str) or "${" not in data:
        return data

    def value_of(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if environ.get(name):
            return environ[name]
        if default is None:
            raise ConfigError(f"{prefix}: {match.group(0)} but the environment variable {name} is not set (or give ${{{name}:-default}})")
        return default

    return _VARIABLE.sub(value_of, data)


def load_config(
    cls: type[T], path: str | Path | None, overrides: list[str] | None = None, environ: typing.Mapping[str, str] | None = None
) -> T:
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not a text file (a YAML config is UTF-8 text)") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from None
    return build(cls, expand_environment(apply_overrides(data, list(overrides or [])), environ=environ))


def to_dict(config: Any) -> dict:
    """Plain nested dict (lists for tuples) of a config dataclass, e.g. for YAML or MLflow."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 1}}`` -> ``{"optim.lr": 1}`` (for MLflow params)."""
    flat = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat
