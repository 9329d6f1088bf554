"""Config dataclasses as plain data: to and from dicts (nested configs, tuples), the config file a
run writes beside its outputs, and ``FIELD=VALUE`` overrides parsed with each field's own type.

Standard library only, so that every CLI can read configs before torch loads. A config file is a
JSON object with ``stage`` (the command that wrote it, e.g. ``align train``, ``distill``,
``pipeline``) and the settings, either at the top level or under a key (``training`` in a training
run's ``config.json``, which also records what the run measured of its data and model).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from acula_edge.errors import AculaError

T = TypeVar("T")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


class ConfigError(AculaError):
    """A config file or override that does not fit its config dataclass."""


def to_dict(cfg: Any) -> Any:
    """Plain-JSON form of a config dataclass: nested configs as dicts, tuples as lists."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (tuple, list)):
        return [to_dict(x) for x in cfg]
    if isinstance(cfg, Mapping):
        return {k: to_dict(v) for k, v in cfg.items()}
    return cfg


def from_dict(cls: type[T], data: Any, where: str = "") -> T:
    """The ``cls`` instance that :func:`to_dict` wrote as ``data``; fields left out keep their defaults.

    Unknown or missing fields and values of the wrong type raise :class:`ConfigError` naming the
    field (``where`` is the path of ``data`` inside a larger config, for the message)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or cls.__name__}: expected an object of {cls.__name__} settings, got {_short(data)}")
    hints = field_types(cls)
    at = f"{where}: " if where else ""
    unknown = [str(k) for k in data if k not in hints]
    if unknown:
        raise ConfigError(f"{at}unknown {cls.__name__} field{'s' * (len(unknown) > 1)} {', '.join(unknown)}")
    missing = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in data
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{at}missing {cls.__name__} field{'s' * (len(missing) > 1)} {', '.join(missing)}")
    return cls(**{k: _typed(hints[k], v, _join(where, k)) for k, v in data.items()})


def field_types(cls: type) -> dict[str, Any]:
    """Each init field of a config dataclass and its resolved type."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def read_config(path: str | Path, cls: type[T], stage: str, key: str | None = None) -> T:
    """The ``cls`` config in the file ``path`` written by ``stage`` (under ``key`` when given);
    a missing file, bad JSON, another stage's config or a bad field is one :class:`ConfigError`."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"--config {path}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
    except ValueError as e:
        raise ConfigError(f"--config {path}: not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"--config {path}: expected a JSON object, got {_short(doc)}")
    written_by = doc.get("stage", stage)
    if written_by != stage:
        raise ConfigError(f"--config {path}: a `{written_by}` run's config, not a `{stage}` one")
    body = doc.get(key) if key else {k: v for k, v in doc.items() if k != "stage"}
    if not isinstance(body, dict):
        raise ConfigError(f"--config {path}: no {key!r} settings in it: not a `{stage}` run's config")
    try:
        return from_dict(cls, body, key or "")
    except AculaError as e:
        raise ConfigError(f"--config {path}: {e}") from None


def config_document(cfg: Any, stage: str) -> str:
    """The JSON text of a config file for ``cfg`` written by ``stage`` (what :func:`read_config` reads)."""
    return json.dumps({"stage": stage, **to_dict(cfg)}, indent=2) + "\n"


def override(cfg: T, items: Sequence[str], flag: str = "--set") -> T:
    """``cfg`` with ``FIELD=VALUE`` overrides (``FIELD.SUBFIELD=VALUE`` inside a nested config), each
    value parsed as its field's type: ``none`` for an optional field, ``true``/``false``, numbers,
    comma-separated tuples."""
    changes: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        path = name.split(".")
        at, into = type(cfg), changes
        for depth, part in enumerate(path):
            kinds = field_types(at)
            if not sep or part not in kinds:
                prefix = ".".join(path[:depth])
                known = ", ".join(_join(prefix, k) for k in kinds)
                raise ConfigError(f"{flag} {item}: give FIELD=VALUE with FIELD one of {known}")
            kind = kinds[part]
            if depth < len(path) - 1:
                if not _is_config(kind):
                    raise ConfigError(f"{flag} {item}: {'.'.join(path[:depth + 1])} has no fields")
                at, into = kind, into.setdefault(part, {})
            elif _is_config(kind):
                raise ConfigError(f"{flag} {item}: set the fields of {name} one by one ({name}.FIELD=VALUE)")
            else:
                try:
                    into[part] = parse_value(kind, text)
                except ValueError:
                    raise ConfigError(f"{flag} {item}: {name} takes {describe(kind)}") from None
    return _replace(cfg, changes)


def parse_value(kind: Any, text: str) -> Any:
    """``text`` as a value of type ``kind``; ValueError when it is not one."""
    options = _union(kind)
    if options is not None:
        rest = [k for k in options if k is not type(None)]
        if len(rest) < len(options) and (text.lower() in ("none", "null") or (text == "" and str not in rest)):
            return None
        if len(rest) != 1:
            raise ValueError(text)
        kind = rest[0]
    if kind is bool:
        low = text.lower()
        if low not in _TRUE + _FALSE:
            raise ValueError(text)
        return low in _TRUE
    if kind in (int, float, str):
        return kind(text.strip()) if kind is not str else text
    if kind is tuple or typing.get_origin(kind) is tuple:
        parts = [p.strip() for p in text.split(",")] if text.strip() else []
        items = _tuple_items(kind, len(parts))
        return tuple(parse_value(k, p) for k, p in zip(items, parts))
    if kind is Any:
        return text
    raise ValueError(text)


def describe(kind: Any, listed: bool = False) -> str:
    """What a value of type ``kind`` looks like, for messages: on the command line, or in JSON with ``listed``."""
    options = _union(kind)
    if options is not None:
        rest = [k for k in options if k is not type(None)]
        text = " or ".join(describe(k, listed) for k in rest)
        return text + (" or null" if listed else " or none") if len(rest) < len(options) else text
    if kind is tuple or typing.get_origin(kind) is tuple:
        args = typing.get_args(kind)
        what = "a list of" if listed else "comma-separated"
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            return f"{what} values" + (f" ({describe(args[0], listed)} each)" if args else "")
        return f"{what} {len(args)} values ({', '.join(describe(a, listed) for a in args)})"
    return {bool: "true or false", int: "an integer", float: "a number", str: "text"}.get(
        kind, getattr(kind, "__name__", str(kind)))


# ----------------------------------------------------------------------------- internals


def _typed(kind: Any, value: Any, where: str) -> Any:
    """A JSON value as type ``kind`` (lists become tuples, objects nested configs; an int stays an
    int in a float field, so that a config reads back exactly as it was written)."""
    options = _union(kind)
    if options is not None:
        if value is None and type(None) in options:
            return None
        rest = [k for k in options if k is not type(None)]
        if len(rest) == 1 and _is_config(rest[0]):
            return _typed(rest[0], value, where)  # its own message names the field inside it
        for k in rest:
            try:
                return _typed(k, value, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: expected {describe(kind, True)}, got {_short(value)}")
    if _is_config(kind):
        return from_dict(kind, value, where)
    origin, args = typing.get_origin(kind) or kind, typing.get_args(kind)
    ok = {bool: isinstance(value, bool), int: isinstance(value, int) and not isinstance(value, bool),
          float: isinstance(value, (int, float)) and not isinstance(value, bool), str: isinstance(value, str)}
    if origin in ok:
        if not ok[origin]:
            raise ConfigError(f"{where}: expected {describe(kind, True)}, got {_short(value)}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected {describe(kind, True)}, got {_short(value)}")
        try:
            items = _tuple_items(kind, len(value))
        except ValueError:
            raise ConfigError(f"{where}: expected {describe(kind, True)}, got {_short(value)}") from None
        return tuple(_typed(k, v, f"{where}[{i}]") for i, (k, v) in enumerate(zip(items, value)))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected an object, got {_short(value)}")
        vkind = args[1] if len(args) == 2 else Any
        return {k: _typed(vkind, v, _join(where, k)) for k, v in value.items()}
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {_short(value)}")
        return [_typed(args[0] if args else Any, v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _tuple_items(kind: Any, n: int) -> list[Any]:
    """The type of each of ``n`` items of tuple type ``kind``; ValueError for a wrong length."""
    args = typing.get_args(kind)
    if not args:
        return [Any] * n
    if len(args) == 2 and args[1] is Ellipsis:
        return [args[0]] * n
    if n != len(args):
        raise ValueError(f"{len(args)} values, got {n}")
    return list(args)


def _union(kind: Any) -> tuple | None:
    """The members of a union type (``X | None``, ``Optional[X]``), else None."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return typing.get_args(kind)
    return None


def _is_config(kind: Any) -> bool:
    return isinstance(kind, type) and dataclasses.is_dataclass(kind)


def _replace(cfg: T, changes: dict[str, Any]) -> T:
    """``cfg`` with (nested) changes, each config rebuilt once."""
    if not changes:
        return cfg
    return dataclasses.replace(cfg, **{k: _replace(getattr(cfg, k), v) if _is_config(type(getattr(cfg, k)))
                                        else v for k, v in changes.items()})


def _join(where: str, name: Any) -> str:
    return f"{where}.{name}" if where else str(name)


def _short(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (dict, list, str, int, float, bool, type(None))) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


__all__ = ["ConfigError", "config_document", "describe", "field_types", "from_dict", "override", "parse_value",
           "read_config", "to_dict"]
