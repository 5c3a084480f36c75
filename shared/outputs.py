"""Where a command that turns input files into output files writes each one: the one planner of
``compress encode`` / ``decode`` and ``translate``.

The rule: the output path ``out`` names **one file** when its suffix is one the command reads or
writes (an image suffix, or the input's or output's own, such as ``.enso``) and it is not an
existing folder; then the input must be exactly one file (a folder gives a folder, however many
images it holds) and the suffix must be one the command writes. Any other ``out`` names a
**folder** (made when written), and each input lands at its path relative to its input root with
the command's suffix: ``-o out`` turns ``photos/sub/a.jpg`` into ``out/sub/a.png``. So a folder may
have dots in its name (``results.v2``) and an image name is never mistaken for a folder.

Everything is checked before any work: two inputs that would write one output, a folder wanted
where a file is, and (without ``force``) outputs that exist are refused with one line each, as
:class:`~shared.errors.UserError` (these are the user's paths; this is the commands' file layer).
"""
from __future__ import annotations

from pathlib import Path

from .data.images import EXTENSIONS, list_images
from .errors import UserError


def input_files(inputs: list[Path], suffix: str | None = None) -> list[tuple[Path, Path]]:
    """(file, its path relative to its input root) for every input: files as given, folders walked
    (sorted) for images (``suffix`` None, :func:`~shared.data.images.list_images`) or for files
    ending in ``suffix``. A missing input or a folder without such files is a ``UserError``."""
    pairs: list[tuple[Path, Path]] = []
    for p in map(Path, inputs):
        if p.is_dir():
            files = list_images(p) if suffix is None else sorted(f for f in p.rglob(f"*{suffix}") if f.is_file())
            if not files:
                raise UserError(f"folder {p} holds no {suffix} files")
            pairs += [(f, f.relative_to(p)) for f in files]
        elif p.is_file():
            pairs.append((p, Path(p.name)))
        else:
            raise UserError(f"input {p} does not exist")
    return pairs


def _kind(suffix: str, plural: bool = False) -> str:
    if suffix.lower() in EXTENSIONS:
        return "images" if plural else "an image"
    return f"{suffix} files" if plural else f"a {suffix} file"


def plan_outputs(inputs: list[Path], out: Path, suffix: str, force: bool, input_suffix: str | None = None) -> list[tuple[Path, Path]]:
    """(input, output) per file of ``inputs`` (:func:`input_files` with ``input_suffix``: images
    when None) under the module's rule, ``suffix`` being what the command writes (``".png"``: any
    image suffix may name the file; ``".enso"``: only that one)."""
    out = Path(out)
    pairs = input_files(inputs, input_suffix)
    writes = EXTENSIONS if suffix in EXTENSIONS else {suffix}
    known = EXTENSIONS | writes | ({input_suffix} if input_suffix else set())
    names_a_file = out.suffix.lower() in known and not out.is_dir()
    single = len(inputs) == 1 and Path(inputs[0]).is_file()
    if names_a_file and single and out.suffix.lower() not in writes:
        raise UserError(f"output {out} is named like {_kind(out.suffix)}, but this command writes {_kind(suffix, plural=True)}; use {suffix}")
    if not (names_a_file and single) and out.exists() and not out.is_dir():
        raise UserError(f"output {out} is an existing file, not a folder: give a folder, or for one input file an output name ending in {suffix}")
    if names_a_file and not single:
        raise UserError(f"output {out} names a file, but the inputs are a folder or several files; give an output folder")
    jobs = [(src, out if names_a_file else out / rel.with_suffix(suffix)) for src, rel in pairs]
    first: dict[Path, Path] = {}
    for src, dst in jobs:
        if dst in first:
            raise UserError(f"{first[dst]} and {src} would both be written to {dst}; rename one, or give them separate output folders")
        first[dst] = src
    if not force:
        existing = [str(dst) for _, dst in jobs if dst.exists()]
        if existing:
            more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
            raise UserError(f"{existing[0]} exists{more}; pass --force to overwrite")
    return jobs
