"""File-level encode and decode for the ``compress`` command: inputs, outputs, progress, no clobbering."""
from __future__ import annotations

import math
import sys
from pathlib import Path

from tqdm import tqdm

from shared.config import atomic_write_bytes
from shared.data.images import EXTENSIONS, list_images, load_image, save_image
from shared.errors import UserError

from .codec import Codec
from .container import parse

SUFFIX = ".enso"


def _expand(inputs: list[Path], want: str) -> list[tuple[Path, Path]]:
    """(file, path relative to its input root) for every input file; folders are walked."""
    pairs = []
    for p in inputs:
        if p.is_dir():
            files = list_images(p) if want == "image" else sorted(p.rglob(f"*{SUFFIX}"))
            if not files:
                raise UserError(f"folder {p} holds no {SUFFIX} files")
            pairs += [(f, f.relative_to(p)) for f in files]
        elif p.is_file():
            pairs.append((p, Path(p.name)))
        else:
            raise UserError(f"input {p} does not exist")
    return pairs


def _targets(pairs: list[tuple[Path, Path]], out: Path, suffix: str, force: bool) -> list[tuple[Path, Path]]:
    """(input, output) per file: ``out`` itself for one input named as a file, else ``out``/relative
    path with ``suffix``; refused before any work if two inputs would write one output, if several
    need a folder where a file is, or (without ``force``) if an output exists."""
    single = len(pairs) == 1 and not out.is_dir() and out.suffix != ""
    if not single and out.exists() and not out.is_dir():
        raise UserError(f"{out} is an existing file, not a folder: give a folder, or for one input an output name with its suffix")
    jobs = [(src, out if single else out / rel.with_suffix(suffix)) for src, rel in pairs]
    first: dict[Path, Path] = {}
    for src, dst in jobs:
        if dst in first:
            raise UserError(f"{first[dst]} and {src} would both be written to {dst}; give them separate output folders")
        first[dst] = src
    if not force:
        existing = [str(dst) for _, dst in jobs if dst.exists()]
        if existing:
            raise UserError(f"{existing[0]} exists{f' (and {len(existing) - 1} more)' if len(existing) > 1 else ''}; pass --force to overwrite")
    return jobs


def encode_files(inputs: list[Path], out: Path, model: str, quality: float, target_bpp: float | None, force: bool, refine: int = 0) -> None:
    """Encode every image of ``inputs`` into ``out`` (a file for one input, else a folder);
    ``refine`` gradient steps on each latent (:mod:`compress.refine`)."""
    if target_bpp is not None and not (0 < target_bpp < math.inf):
        raise UserError(f"--target-bpp must be a positive number of bits per pixel, not {target_bpp}")
    if refine < 0:
        raise UserError(f"--refine takes a number of steps (0 or more), not {refine}")
    jobs = _targets(_expand(inputs, "image"), out, SUFFIX, force)
    if len(jobs) == 1 and jobs[0][1].suffix.lower() in EXTENSIONS:
        raise UserError(f"output {jobs[0][1]} is named like an image, but encode writes an {SUFFIX} file; use {SUFFIX}")
    codec = Codec.load(model)
    for src, dst in tqdm(jobs, desc="encode", unit="img", disable=len(jobs) == 1):
        img = load_image(src, "auto")
        data = codec.encode_to_bpp(img, target_bpp, refine=refine) if target_bpp is not None else codec.encode(img, quality, refine)
        atomic_write_bytes(dst, data)
        bpp = len(data) * 8 / (img.shape[1] * img.shape[2])
        if target_bpp is not None and bpp > target_bpp:
            tqdm.write(f"warning: {src}: no quality reaches {target_bpp} bpp; wrote the smallest file, {bpp:.3f} bpp", file=sys.stderr)
        if len(jobs) == 1:
            print(f"{src} → {dst}: {len(data):,} bytes, {bpp:.3f} bpp")


def decode_files(inputs: list[Path], out: Path, model: str | None, force: bool) -> None:
    """Decode every ``.enso`` file of ``inputs`` to PNG in ``out`` (a file for one input, else a folder),
    each with ``model`` or else the shipped codec that wrote it (:meth:`Codec.for_file`)."""
    jobs = _targets(_expand(inputs, "enso"), out, ".png", force)
    if len(jobs) == 1 and jobs[0][1].suffix.lower() not in EXTENSIONS:
        raise UserError(f"output {jobs[0][1]} is not an image file name; use .png")
    codecs: dict[object, Codec] = {}
    chosen = []
    for src, _ in jobs:  # every file's header, CRC and codec first: a bad file in a folder stops the batch before any output
        header, sections = parse(src.read_bytes(), str(src))
        key = model or (header.model_id, header.weights_hash)
        if key not in codecs:
            codecs[key] = Codec.load(model) if model else Codec.for_file(header, str(src))
        codecs[key].check(header, sections, str(src))
        chosen.append(codecs[key])
    for (src, dst), codec in tqdm(list(zip(jobs, chosen)), desc="decode", unit="img", disable=len(jobs) == 1):
        img = codec.decode(src.read_bytes(), str(src))
        save_image(img, dst)
        if len(jobs) == 1:
            print(f"{src} → {dst}: {img.shape[2]}×{img.shape[1]}")
