"""The encode-time safeguard: never write a learned file that a classical codec beats by far.

A learned codec trained on clean photos can spend many times a classical codec's bits on content
outside its training set (sensor noise, grain, dithering; issue 23). At encode time,
:meth:`compress.codec.Codec.encode` hands this module the image, the learned file's size and its
PSNR; :func:`classical_fallback` searches each candidate codec of :data:`CANDIDATES` for its
smallest file reaching at least that PSNR, and returns the smallest of them when it is smaller than
the learned file by more than :data:`MARGIN` (the learned file's size over the classical one's
above 1 + MARGIN); the codec then stores it in the ``.enso`` container's classical payload coding
(format version 4, :mod:`compress.container`), which :func:`decode_classical` reads back.

The search per candidate is a bisection on the codec's integer quality that stops as soon as the
answer is known: a setting whose file is too large *and* whose PSNR is too low proves that no
setting qualifies (both grow with the setting), so on content where the learned codec does well
one or two classical encodes settle it. Decoding is deterministic: AV1 (AVIF) and JPEG's integer
IDCT (libjpeg's default) decode bit-exactly.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import torch
from PIL import Image

from shared.data.images import to_tensor
from shared.errors import UserError
from shared.metrics.image import psnr

from . import classical

#: the classical codings the safeguard tries, in :data:`compress.container.CODINGS`' names
CANDIDATES = ("avif", "jpeg")
#: the classical file replaces the learned one only when the learned one is larger by more than this fraction.
#: 0.4 keeps every file of the content benchmark within issue 23's targets (1.2 × JPEG's, 1.5 × AVIF's size at
#: equal PSNR; 1.0 left 10 of its 120 files above them) and on Kodak replaces 4 of 144 files, all at quality ≤ 0.2
#: (docs/results.md, scripts/check_content_targets.py)
MARGIN = 0.4
#: each candidate's quality range searched (integer settings, lowest rate first) and its first probe
_RANGE = {"avif": (0, 100, 60), "jpeg": (1, 100, 75)}
_PIL_FORMAT = {"avif": "AVIF", "jpeg": "JPEG"}


@dataclass(frozen=True)
class Fallback:
    """A classical file the safeguard chose: ``coding`` (a candidate name), its ``data`` (a complete
    file), its ``psnr`` (dB) and ``setting`` (the codec's quality), and the ``encodes`` it took."""

    coding: str
    data: bytes
    psnr: float
    setting: int
    encodes: int


def smallest_at_psnr(rgb: torch.Tensor, name: str, target_psnr: float, budget: int, threads: int = 1) -> tuple[Fallback | None, int]:
    """The smallest file of classical codec ``name`` whose PSNR on ``rgb`` (3, H, W) in [0, 1] (on
    the 8-bit grid) is at least ``target_psnr`` and whose size is at most ``budget`` bytes, or None
    when no quality setting gives both; also returns the number of encodes spent."""
    codec = classical.classical_codec(name, threads=threads)
    lo, hi, probe = _RANGE[name]
    best, encodes = None, 0
    while lo <= hi:
        q = min(max(probe, lo), hi)
        data = codec.encode(rgb, q)
        value = float(psnr(rgb[None], codec.decode(data)[None]))
        encodes += 1
        small, good = len(data) <= budget, value >= target_psnr
        if good and small:
            best, budget, hi = Fallback(name, data, value, q, encodes), len(data), q - 1
        elif good:
            hi = q - 1
        elif small:
            lo = q + 1
        else:  # too large and not good enough: higher settings are larger still, lower ones worse
            break
        probe = (lo + hi) // 2
    return best, encodes


def classical_fallback(rgb: torch.Tensor, learned_bytes: int, learned_psnr: float, threads: int = 1) -> Fallback | None:
    """The smallest classical file of :data:`CANDIDATES` at ``learned_psnr`` or better on ``rgb``
    (3, H, W) in [0, 1] (8-bit values), when it is smaller than ``learned_bytes`` by more than
    :data:`MARGIN`; else None (candidates whose library is missing are skipped)."""
    budget = int(learned_bytes / (1.0 + MARGIN))
    best, spent = None, 0
    for name in CANDIDATES:
        if classical.unavailable_reason(name) is not None:
            continue
        found, encodes = smallest_at_psnr(rgb, name, learned_psnr, budget, threads)
        spent += encodes
        if found is not None:
            best, budget = found, len(found.data) - 1
    return None if best is None else Fallback(best.coding, best.data, best.psnr, best.setting, spent)


def decode_classical(data: bytes, coding: str, height: int, width: int, name: str = "input") -> torch.Tensor:
    """A classical payload section (a complete AVIF or JPEG file) → RGB (3, height, width) in [0, 1].
    The embedded file must be of ``coding``'s format, one frame of exactly height × width pixels
    (checked from its header before its pixels are decoded); anything else is a one-line UserError."""
    reason = classical.unavailable_reason(coding)
    if reason is not None:
        raise UserError(f"{name} holds a {coding.upper()} image, which this installation cannot decode: {reason}")
    try:
        with Image.open(io.BytesIO(data), formats=[_PIL_FORMAT[coding]]) as im:
            if im.size != (width, height) or getattr(im, "n_frames", 1) != 1:
                raise UserError(f"{name} holds a {coding.upper()} image of {im.size[0]}×{im.size[1]} pixels, not the {width}×{height} its header says; the file is damaged")
            im.load()
            rgb = im.convert("RGB")
    except UserError:
        raise
    except Exception:  # Pillow signals a damaged image with many exception types
        raise UserError(f"{name} holds a damaged {coding.upper()} image") from None
    return to_tensor(rgb)
