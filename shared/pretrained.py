"""Finding pretrained weight files without downloading anything silently.

Every network ensō borrows (LPIPS's AlexNet, FID's Inception) is resolved the same way by
:func:`resolve_weights`: an explicit path (argument, else environment variable; a missing explicit
file is an error, not a reason to look further), then offline places in order, then torch hub's
checkpoint cache, then a download into that cache only when allowed (``allow_download=True`` or
``ENSO_ALLOW_DOWNLOAD=1``); otherwise one :class:`~shared.errors.UserError` line that says how to
provide the file.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import torch

from .errors import UserError

DOWNLOAD_ENV = "ENSO_ALLOW_DOWNLOAD"


def downloads_allowed(allow_download: bool | None = None) -> bool:
    """``allow_download`` when given, else whether ``$ENSO_ALLOW_DOWNLOAD`` is 1/true/yes."""
    if allow_download is not None:
        return allow_download
    return os.environ.get(DOWNLOAD_ENV, "").strip().lower() in ("1", "true", "yes")


def hub_cache_file(name: str) -> Path:
    """Where torch hub keeps (or would download) the checkpoint file ``name``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def resolve_weights(
    what: str,
    explicit: str | os.PathLike | None,
    env: str,
    offline: Iterable[Path | None],
    cache_name: str,
    url: str,
    allow_download: bool | None,
    accepted: str,
    how: str,
) -> Path:
    """The weight file for ``what`` (e.g. "LPIPS backbone weights"), in the module doc's order.

    ``explicit``: the caller's argument (``env`` is read when it is None); ``offline``: candidate
    files (None entries are skipped); ``cache_name``/``url``: the hub cache file and its source;
    ``accepted``: the file names an explicit path may point at (for the error); ``how``: the
    offline ways to provide the file, for the final error.
    """
    given = explicit or os.environ.get(env)
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            source = "the weights argument" if explicit else f"${env}"
            raise UserError(f"{what} {path} (from {source}) do not exist; point it at {accepted}")
        return path
    for path in offline:
        if path is not None and path.is_file():
            return path
    cached = hub_cache_file(cache_name)
    if cached.is_file():
        return cached
    if downloads_allowed(allow_download):
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(cached), progress=False)
        return cached
    raise UserError(
        f"{what} were not found: {how}, or put {cache_name} in {cached.parent}, or set {DOWNLOAD_ENV}=1 to download it"
    )
