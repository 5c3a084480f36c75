"""Typed configs: dataclasses that become CLI flags and JSON files.

Every configurable thing in ensō is a dataclass. :func:`add_config_args` turns its fields into
``--flag`` options (``Literal`` fields become choices, ``bool`` fields ``--x/--no-x``, tuples take
several values), :func:`config_from_args` builds the dataclass back, and :func:`save_config` /
:func:`load_config` write and read it as JSON beside a run.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from .errors import UserError

C = TypeVar("C")


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def add_config_args(
    parser: argparse.ArgumentParser, cls: type, prefix: str = "", skip: tuple[str, ...] = (), defaults: dict[str, Any] | None = None
) -> None:
    """Add one ``--{prefix}{field}`` option per dataclass field of ``cls``.

    The help shows the dataclass's default, or ``defaults[field]`` where a command overrides it (the
    command must then pass the same overrides as ``base`` to :func:`config_from_args`).
    """
    hints = _field_types(cls)
    group = parser.add_argument_group(cls.__name__)
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        tp, optional = _unwrap_optional(hints[f.name])
        flag = "--" + (prefix + f.name).replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        default = (defaults or {}).get(f.name, default)
        help_text = f.metadata.get("help", "") + f" (default: {default})"
        kw: dict[str, Any] = {"dest": prefix + f.name, "default": argparse.SUPPRESS, "help": help_text}
        origin = get_origin(tp)
        if tp is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif origin is Literal:
            group.add_argument(flag, choices=list(get_args(tp)), **kw)
        elif origin is tuple:
            inner = get_args(tp)[0]
            group.add_argument(flag, nargs="+", type=inner, **kw)
        elif tp in (int, float, str):
            conv = tp
            if optional:
                def conv(s: str, _t=tp):  # noqa: E306
                    return None if s.lower() == "none" else _t(s)
            group.add_argument(flag, type=conv, **kw)
        else:  # nested or unusual types are set from JSON only
            continue


def config_from_args(cls: type[C], ns: argparse.Namespace, prefix: str = "", base: C | None = None) -> C:
    """Build ``cls`` from the options :func:`add_config_args` added; unset options keep ``base``'s values."""
    values = dataclasses.asdict(base) if base is not None else {}
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        if hasattr(ns, key):
            values[f.name] = getattr(ns, key)
    return from_dict(cls, values)


def from_dict(cls: type[C], values: dict[str, Any]) -> C:
    """Build ``cls`` from a plain dict (as read from JSON); unknown keys are an error naming them."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise UserError(f"{cls.__name__} has no field(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    hints = _field_types(cls)
    kwargs = {}
    for k, v in values.items():
        tp, _ = _unwrap_optional(hints[k])
        if get_origin(tp) is tuple and isinstance(v, list):
            v = tuple(v)
        if get_origin(tp) is Literal and v not in get_args(tp):
            raise UserError(f"{cls.__name__}.{k} must be one of {', '.join(map(str, get_args(tp)))}, not {v!r}")
        kwargs[k] = v
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass as a JSON-ready dict."""
    return dataclasses.asdict(cfg)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_json(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def save_config(cfg: Any, path: str | os.PathLike) -> None:
    save_json(to_dict(cfg), path)


def load_config(cls: type[C], path: str | os.PathLike) -> C:
    try:
        values = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist") from None
    except json.JSONDecodeError as e:
        raise UserError(f"config file {path} is not valid JSON ({e.msg} at line {e.lineno})") from None
    return from_dict(cls, values)
