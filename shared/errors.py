"""One-line user errors and the CLI wrapper that prints them.

Anything the user got wrong (a path, a name, a file) raises :class:`UserError` with a message that
says what was wrong and what to do. CLI entry points run through :func:`run_cli`, which prints that
one line to stderr and exits with status 2, with no traceback unless ``ENSO_TRACEBACK=1``; it
also tunes malloc for the command's large tensors (:func:`shared.allocator.reuse_freed_memory`),
which library code leaves to its caller.
"""
from __future__ import annotations

import os
import sys
from typing import Callable, Sequence


class UserError(Exception):
    """A problem with the user's input: printed as one line, exit status 2."""


class TrainingDiverged(UserError):
    """A loss became NaN or infinite; the message names the step and the loss."""


class ConfigError(ValueError):
    """A configuration a model cannot take (raised by configs' ``__post_init__`` and model code): an
    ordinary ``ValueError`` to library callers, naming fields rather than flags; :func:`run_cli`
    prints it as the one line of a :class:`UserError`."""


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run ``main(argv)`` and turn a :class:`UserError` or :class:`ConfigError` into one line on
    stderr and exit code 2."""
    from .allocator import reuse_freed_memory

    reuse_freed_memory()
    try:
        return int(main(argv) or 0)
    except (UserError, ConfigError) as e:
        if os.environ.get("ENSO_TRACEBACK") == "1":
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
