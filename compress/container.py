"""The ``.enso`` file: a small, versioned, checked container around a codec's bitstreams.

Layout (big-endian), version 3::

    offset size field
    0      4    magic            b"ENSO"
    4      1    format version   3
    5      1    colour mode      0 RGB, 1 grey (L), 2 RGBA (alpha stored losslessly, zlib)
    6      16   model id         ASCII registry name, NUL-padded
    22     8    weights hash     first 8 bytes of SHA-256 over the model's weights
    30     2    quality          round(q · 65535), q in [0, 1]
    32     4    height           original pixels (before padding)
    36     4    width
    40     1    section count    n (≤ 8)
    41     4·n  section lengths  payload sections, in order
    ..     4    CRC-32           over everything before it and the payload
    ..          payload          the sections, concatenated

Versions 1–3 share this layout and differ in how the payload's Gaussians are chosen: version 2
takes the table scale nearest the predicted one (version 1 rounded it up, 2–3 % more bits), and
version 3 predicts the scales and means with the integer hyper-synthesis
(:mod:`compress.models.integer_synthesis`; version 2 used float64). Older files would decode
wrongly with the same weights, so they are refused with a one-line error.

Version 4 adds one byte, the payload coding, right after the section count (the section lengths
follow it)::

    41     1    payload coding   1 AVIF, 2 JPEG (0, the learned codec's latents, is written as version 3)

A version-4 file's first section is then a complete AVIF or JPEG file of the RGB image (grey
images as RGB), height × width pixels, that :mod:`compress.safeguard` chose because it was much
smaller than the learned codec's file at equal PSNR; an RGBA file's last section is its alpha as
in version 3. The model id and weights hash still name the learned codec that wrote the file.
Files of the learned coding keep version 3, so every ensō that reads version 3 reads them; an
ensō older than version 4 refuses a classical-coding file with a line naming version 4.

:func:`parse` checks all of it (magic, version, mode, sizes against limits, lengths against the
file's size, CRC) before anything is allocated, and raises :class:`~shared.errors.UserError` with
one line naming the problem.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from shared.errors import UserError

MAGIC = b"ENSO"
#: the version of files coding the learned codec's latents (the format fixtures pin it)
VERSION = 3
#: the newest version this ensō reads and writes: files of a classical payload coding
NEWEST_VERSION = 4
#: payload codings: index = the version-4 coding byte ("learned" files are version 3, with no such byte)
CODINGS = ("learned", "avif", "jpeg")
MODES = ("RGB", "L", "RGBA")
MAX_SIDE = 65_535
MAX_PIXELS = 200_000_000
MAX_SECTIONS = 8
_FIXED = struct.Struct(">4sBB16s8sHIIB")


@dataclass(frozen=True)
class Header:
    mode: str
    model_id: str
    weights_hash: bytes
    quality_code: int
    height: int
    width: int
    coding: str = "learned"

    @property
    def quality(self) -> float:
        return self.quality_code / 65535.0


def quality_code(q: float) -> int:
    """Quality in [0, 1] → the 16-bit code stored in the header (the decoder sees this exact value)."""
    if not 0.0 <= q <= 1.0:
        raise UserError(f"quality must be in [0, 1], not {q}")
    return int(round(q * 65535))


def pack(header: Header, sections: list[bytes]) -> bytes:
    """Header + sections → the file's bytes."""
    if len(sections) > MAX_SECTIONS:
        raise ValueError("too many sections")
    model = header.model_id.encode("ascii")
    if len(model) > 16:
        raise ValueError("model id longer than 16 bytes")
    classical = header.coding != "learned"
    head = _FIXED.pack(
        MAGIC, NEWEST_VERSION if classical else VERSION, MODES.index(header.mode), model.ljust(16, b"\0"), header.weights_hash[:8],
        header.quality_code, header.height, header.width, len(sections),
    ) + (bytes([CODINGS.index(header.coding)]) if classical else b"") + b"".join(struct.pack(">I", len(s)) for s in sections)
    payload = b"".join(sections)
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + struct.pack(">I", crc) + payload


def parse(data: bytes, name: str = "input") -> tuple[Header, list[bytes]]:
    """The file's bytes → (header, sections), validated; any problem is a one-line UserError."""
    if len(data) == 0:
        raise UserError(f"{name} is empty")
    if len(data) < _FIXED.size + 4:
        if not MAGIC.startswith(data[:4]):
            raise UserError(f"{name} is not an ensō file (wrong magic bytes)")
        raise UserError(f"{name} is truncated (only {len(data)} bytes)")
    magic, version, mode, model, whash, q, h, w, n = _FIXED.unpack_from(data)
    if magic != MAGIC:
        raise UserError(f"{name} is not an ensō file (wrong magic bytes{'; it is a PNG' if data[:4] == bytes([0x89]) + b'PNG' else ''})")
    if version > NEWEST_VERSION:
        raise UserError(f"{name} uses format version {version}, newer than this ensō reads ({NEWEST_VERSION}); upgrade ensō")
    if version in (1, 2):
        raise UserError(f"{name} uses format version {version}, which this ensō no longer decodes (version {VERSION} codes the latents differently); decode it with the ensō that wrote it")
    if version not in (VERSION, NEWEST_VERSION):
        raise UserError(f"{name} has an invalid format version {version}")
    if mode >= len(MODES):
        raise UserError(f"{name} has an invalid colour mode {mode}; the file is damaged")
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE and h * w <= MAX_PIXELS):
        raise UserError(f"{name} claims {w}×{h} pixels, beyond the {MAX_SIDE}-pixel side / {MAX_PIXELS:,}-pixel limit; the file is damaged")
    if not 1 <= n <= MAX_SECTIONS:
        raise UserError(f"{name} has {n} payload sections; the file is damaged")
    start = _FIXED.size + (version == NEWEST_VERSION)  # version 4: the payload coding byte
    end = start + 4 * n
    if len(data) < end + 4:
        raise UserError(f"{name} is truncated (header cut short)")
    coding = CODINGS[0]
    if version == NEWEST_VERSION:
        if not 1 <= data[_FIXED.size] < len(CODINGS):
            raise UserError(f"{name} has an invalid payload coding {data[_FIXED.size]}; the file is damaged")
        coding = CODINGS[data[_FIXED.size]]
    lengths = struct.unpack_from(f">{n}I", data, start)
    (crc,) = struct.unpack_from(">I", data, end)
    payload = memoryview(data)[end + 4 :]
    if sum(lengths) != len(payload):
        what = "truncated or its section lengths are damaged" if sum(lengths) > len(payload) else "followed by extra bytes"
        raise UserError(f"{name} is {what} (payload {len(payload)} bytes, header says {sum(lengths)})")
    if zlib.crc32(payload, zlib.crc32(data[:end])) != crc:
        raise UserError(f"{name} is damaged (CRC-32 mismatch)")
    try:
        model_id = model.rstrip(b"\0").decode("ascii")
    except UnicodeDecodeError:
        raise UserError(f"{name} has an invalid model id; the file is damaged") from None
    sections, at = [], 0
    for length in lengths:
        sections.append(bytes(payload[at : at + length]))
        at += length
    return Header(MODES[mode], model_id, whash, q, h, w, coding), sections
