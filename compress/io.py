"""File-level encode and decode for the ``compress`` command: inputs, outputs, progress, no clobbering."""
from __future__ import annotations

import sys
from pathlib import Path

from tqdm import tqdm

from shared.config import atomic_write_bytes
from shared.data.images import load_image, save_image
from shared.errors import UserError
from shared.outputs import plan_outputs

from .codec import Codec
from .container import parse
from .options import DecodeOptions, EncodeOptions

SUFFIX = ".enso"


def encode_files(inputs: list[Path], out: Path, options: EncodeOptions | None = None, force: bool = False) -> None:
    """Encode every image of ``inputs`` into ``out`` (a file or a folder, :mod:`shared.outputs`'s rule)
    as ``options`` say (:class:`~compress.options.EncodeOptions`; None: its defaults); an existing
    output is refused unless ``force``."""
    o = options or EncodeOptions()
    jobs = plan_outputs(inputs, out, SUFFIX, force)
    codec = Codec.load(o.model)
    for src, dst in tqdm(jobs, desc="encode", unit="img", disable=len(jobs) == 1):
        img = load_image(src, "auto")
        if o.target_bpp is not None:
            data = codec.encode_to_bpp(img, o.target_bpp, refine=o.refine, safeguard=o.safeguard)
        else:
            data = codec.encode(img, o.coding_quality, o.refine, o.safeguard)
        atomic_write_bytes(dst, data)
        bpp = len(data) * 8 / (img.shape[1] * img.shape[2])
        if o.target_bpp is not None and bpp > o.target_bpp:
            tqdm.write(f"warning: {src}: no quality reaches {o.target_bpp} bpp; wrote the smallest file, {bpp:.3f} bpp", file=sys.stderr)
        if len(jobs) == 1:
            print(f"{src} → {dst}: {len(data):,} bytes, {bpp:.3f} bpp")


def decode_files(inputs: list[Path], out: Path, options: DecodeOptions | None = None, force: bool = False) -> None:
    """Decode every ``.enso`` file of ``inputs`` to PNG in ``out`` (a file or a folder, :mod:`shared.outputs`'s rule)
    as ``options`` say (:class:`~compress.options.DecodeOptions`; None: its defaults): each with its
    ``model`` or else the shipped codec that wrote it (:meth:`Codec.for_file`), through its ``decoder``
    at its ``realism``; an existing output is refused unless ``force``."""
    o = options or DecodeOptions()
    model, decoder = o.model, o.decoder
    jobs = plan_outputs(inputs, out, ".png", force, input_suffix=SUFFIX)
    codecs: dict[object, Codec] = {}
    chosen = []
    for src, _ in jobs:  # every file's header, CRC and codec first: a bad file in a folder stops the batch before any output
        header, sections = parse(src.read_bytes(), str(src))
        key = model or (header.model_id, header.weights_hash)
        if key not in codecs:
            codecs[key] = Codec.load(model) if model else Codec.for_file(header, str(src))
        codecs[key].check(header, sections, str(src))
        if decoder != "mse":
            try:
                codecs[key].perceptual_synthesis(None if decoder == "perceptual" else decoder)
            except ValueError as e:
                raise UserError(f"--decoder {decoder}: {e}") from None
        chosen.append(codecs[key])
    for (src, dst), codec in tqdm(list(zip(jobs, chosen)), desc="decode", unit="img", disable=len(jobs) == 1):
        img = codec.decode(src.read_bytes(), str(src), decoder, o.realism)
        save_image(img, dst)
        if len(jobs) == 1:
            print(f"{src} → {dst}: {img.shape[2]}×{img.shape[1]}")
