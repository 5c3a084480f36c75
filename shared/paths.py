"""Where the team's data lives: ``$ENSO_DATA`` (a folder holding kodak/, bsd68/, train_photos/, ...)."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError

ENV = "ENSO_DATA"


def data_root() -> Path | None:
    """``$ENSO_DATA`` as a Path, or None when unset."""
    value = os.environ.get(ENV)
    return Path(value) if value else None


def data_dir(name: str, given: str | os.PathLike | None = None, option: str = "") -> Path:
    """The folder for data set ``name``: ``given`` if set, else ``$ENSO_DATA/name``; it must exist.

    ``option`` names the command-line flag that sets ``given``, for the error message.
    """
    if given:
        path = Path(given)
    elif data_root() is not None:
        path = data_root() / name
    else:
        how = f"pass {option} DIR" if option else "pass its path"
        raise UserError(f"no folder for the {name} data: {how}, or set {ENV} to the folder that holds {name}/")
    if not path.is_dir():
        raise UserError(f"data folder {path} does not exist; pass the right path or set {ENV}")
    return path
