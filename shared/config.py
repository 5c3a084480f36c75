"""Typed configs: dataclasses that become CLI flags and JSON files.

Every configurable thing in ensō is a dataclass. :func:`add_config_args` turns its fields into
``--flag`` options (``Literal`` fields become choices, ``bool`` fields ``--x/--no-x``, tuples take
several values), :func:`config_from_args` builds the dataclass back, and :func:`save_config` /
:func:`load_config` write and read it as JSON beside a run.

A field whose type is a dataclass embeds that config (a use's config holds its model's): its fields
become flags beside the outer ones, and JSON nests it. The field's metadata may name ``derived``
inner fields, which the outer config's owner sets itself (from its data or its other fields): they
get no flag, are not written, and may share a name with an outer field. ``helps`` maps inner field
names to the help texts the outer config gives them.
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


def _nested_cls(tp: Any) -> type | None:
    """The dataclass a field holds (its flags are flattened into the outer config's), else None."""
    return tp if isinstance(tp, type) and dataclasses.is_dataclass(tp) else None


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


def _derived(f: dataclasses.Field) -> tuple[str, ...]:
    return tuple(f.metadata.get("derived", ()))


def _flat_names(cls: type) -> dict[str, tuple[str, ...]]:
    """Every settable leaf field of ``cls`` by its flat name, with its path through nested configs
    (derived fields left out).

    A nested config's fields sit beside the outer ones without a prefix, so a name used twice is a
    ``ValueError``.
    """
    hints = _field_types(cls)
    out: dict[str, tuple[str, ...]] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        inner = _nested_cls(hints[f.name])
        if inner:
            items = {k: (f.name, *path) for k, path in _flat_names(inner).items() if path[0] not in _derived(f)}
        else:
            items = {f.name: (f.name,)}
        for k, path in items.items():
            if k in out:
                where = f"{'.'.join(out[k])} and {'.'.join(path)}"
                raise ValueError(f"{cls.__name__}: field {k!r} is declared twice ({where}); nested configs share one flag namespace")
            out[k] = path
    return out


def add_config_args(
    parser: argparse.ArgumentParser,
    cls: type,
    prefix: str = "",
    skip: tuple[str, ...] = (),
    defaults: dict[str, Any] | None = None,
    hidden_alias_prefix: str | None = None,
) -> None:
    """Add one ``--{prefix}{field}`` option per dataclass field of ``cls``.

    A field whose type is itself a dataclass (a nested config) adds its fields' options in its place,
    under the same ``prefix``; a name found both outside and inside is a ``ValueError``. ``skip`` and
    ``defaults`` name fields by these flat names. The help shows the dataclass's default, or
    ``defaults[field]`` where a command overrides it (the command must then pass the same overrides
    as ``base`` to :func:`config_from_args`). With ``hidden_alias_prefix``, every option is also
    accepted as ``--{hidden_alias_prefix}{field}``, left out of ``--help``: an old spelling kept working.
    """
    _flat_names(cls)  # refuse clashing names before adding any option
    _add_fields(parser.add_argument_group(cls.__name__), cls, prefix, tuple(skip), defaults or {}, hidden_alias_prefix, None, {})


def _add_fields(group, cls: type, prefix: str, skip: tuple[str, ...], defaults: dict[str, Any], alias: str | None, instance: Any,
                helps: dict[str, str]) -> None:
    hints = _field_types(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        tp, optional = _unwrap_optional(hints[f.name])
        default = getattr(instance, f.name) if instance is not None else _default(f)
        inner = _nested_cls(hints[f.name])
        if inner is not None:
            default = defaults.get(f.name, default)  # a whole nested config may be overridden too
            instance_ = None if default is dataclasses.MISSING else default
            _add_fields(group, inner, prefix, skip + _derived(f), defaults, alias, instance_, {**f.metadata.get("helps", {}), **helps})
            continue
        default = defaults.get(f.name, default)
        help_text = helps.get(f.name, f.metadata.get("help", "")) + f" (default: {default})"
        kw: dict[str, Any] = {"dest": prefix + f.name, "default": argparse.SUPPRESS}
        origin = get_origin(tp)
        if tp is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif origin is Literal:
            kw["choices"] = list(get_args(tp))
        elif origin is tuple:
            kw["nargs"], kw["type"] = "+", get_args(tp)[0]
        elif tp in (int, float, str):
            conv = tp
            if optional:
                def conv(s: str, _t=tp):  # noqa: E306
                    return None if s.lower() == "none" else _t(s)
            kw["type"] = conv
        else:  # unusual types are set from JSON only
            continue
        group.add_argument("--" + (prefix + f.name).replace("_", "-"), help=help_text, **kw)
        if alias is not None:
            group.add_argument("--" + (alias + f.name).replace("_", "-"), help=argparse.SUPPRESS, **kw)


def config_from_args(cls: type[C], ns: argparse.Namespace, prefix: str = "", base: C | None = None) -> C:
    """Build ``cls`` from the options :func:`add_config_args` added; unset options keep ``base``'s values
    (nested configs included)."""
    values: dict[str, Any] = dataclasses.asdict(base) if base is not None else {}  # type: ignore[call-overload]
    for name in _flat_names(cls):
        key = prefix + name
        if hasattr(ns, key):
            values[name] = getattr(ns, key)  # a nested field's flat name: from_dict files it in its config
    return from_dict(cls, values)


def from_dict(cls: type[C], values: dict[str, Any]) -> C:
    """Build ``cls`` from a plain dict (as read from JSON); unknown keys are an error naming them.

    A nested config is read from a nested dict (missing fields keep the outer default's values) or
    from its fields' names at the top level, as configs written before the nesting hold them; those
    flat keys win over the nested dict's.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    flat = _flat_names(cls)
    unknown = sorted(k for k in values if k not in names and k not in flat)
    if unknown:
        raise UserError(f"{cls.__name__} has no field(s) {', '.join(unknown)}; known: {', '.join(sorted(names | set(flat)))}")
    hints = _field_types(cls)
    kwargs: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for k, v in values.items():
        if k not in names:  # a nested config's field, written flat
            path = flat[k]
            node = nested.setdefault(path[0], {})
            for step in path[1:-1]:
                node = node.setdefault(step, {})
            node[path[-1]] = v
            continue
        if _nested_cls(hints[k]) is not None:
            if not isinstance(v, dict) and not dataclasses.is_dataclass(v):
                raise UserError(f"{cls.__name__}.{k} must be a {hints[k].__name__} (a JSON object), not {v!r}")
            nested.setdefault(k, {})
            kwargs[k] = v
            continue
        tp, _ = _unwrap_optional(hints[k])
        if get_origin(tp) is tuple and isinstance(v, list):
            v = tuple(v)
        if get_origin(tp) is Literal and v not in get_args(tp):
            raise UserError(f"{cls.__name__}.{k} must be one of {', '.join(map(str, get_args(tp)))}, not {v!r}")
        kwargs[k] = v
    defaults = {f.name: f for f in dataclasses.fields(cls)}
    for k, flat_values in nested.items():
        given = kwargs.get(k)
        start = given if dataclasses.is_dataclass(given) else _default(defaults[k])
        merged = dataclasses.asdict(start) if dataclasses.is_dataclass(start) else {}  # type: ignore[arg-type]
        merged = _merge(_merge(merged, given if isinstance(given, dict) else {}), flat_values)
        kwargs[k] = from_dict(hints[k], merged)
    return cls(**kwargs)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass as a JSON-ready dict (nested configs as nested dicts, without their derived fields)."""
    out = dataclasses.asdict(cfg)
    _drop_derived(type(cfg), out)
    return out


def _drop_derived(cls: type, values: dict[str, Any]) -> None:
    hints = _field_types(cls)
    for f in dataclasses.fields(cls):
        inner = _nested_cls(hints[f.name])
        if inner is not None and isinstance(values.get(f.name), dict):
            for name in _derived(f):
                values[f.name].pop(name, None)
            _drop_derived(inner, values[f.name])


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
