"""The model registry: every trainable model of ensō by name, with its typed config.

>>> from shared import registry
>>> model = registry.build("vae", {"input_shape": (1, 8, 8), "latent_dim": 2})

Models register themselves with :func:`register`; ``shared.models``, ``compress`` and
``translate`` import their modules so that the names exist once the package is imported.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from .config import from_dict, to_dict
from .errors import UserError


@dataclass(frozen=True)
class Entry:
    name: str
    cls: type
    config_cls: type
    summary: str


_MODELS: dict[str, Entry] = {}


def register(name: str, config_cls: type) -> Callable[[type], type]:
    """Class decorator: make ``cls(config_cls(...))`` buildable as ``build(name, ...)``."""

    def wrap(cls: type) -> type:
        if name in _MODELS:
            raise ValueError(f"model name {name!r} registered twice")
        doc = (cls.__doc__ or "").strip().splitlines()
        _MODELS[name] = Entry(name, cls, config_cls, doc[0] if doc else "")
        cls.registry_name = name
        return cls

    return wrap


def _load_all(only_shared: bool = False) -> None:
    from . import models  # noqa: F401  (registers the autoencoder family)

    if only_shared:
        return
    for mod in ("compress.models", "translate.models"):
        try:
            __import__(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


def names() -> list[str]:
    _load_all()
    return sorted(_MODELS)


def entry(name: str) -> Entry:
    _load_all(only_shared=True)
    if name not in _MODELS:  # the codecs and translators import heavier libraries: only on demand
        _load_all()
    if name not in _MODELS:
        raise UserError(f"unknown model {name!r}; known models: {', '.join(sorted(_MODELS))}")
    return _MODELS[name]


def make_config(name: str, values: dict[str, Any] | Any | None = None) -> Any:
    """The config dataclass of model ``name`` from a dict of overrides (or a config instance)."""
    e = entry(name)
    if values is None:
        return e.config_cls()
    if dataclasses.is_dataclass(values):
        return values
    return from_dict(e.config_cls, values)


def build(name: str, config: dict[str, Any] | Any | None = None):
    """Build model ``name``; ``config`` is its config dataclass, a dict of overrides, or None."""
    e = entry(name)
    return e.cls(make_config(name, config))


def describe(model) -> dict[str, Any]:
    """``{"name": ..., "config": {...}}`` for a registered model, enough for :func:`build`."""
    return {"name": model.registry_name, "config": to_dict(model.config)}
