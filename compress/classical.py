"""Classical image codecs for rate–distortion comparisons, in memory through Pillow.

JPEG, WebP, AVIF and JPEG 2000 come with Pillow (when it was built with libjpeg, libwebp, libavif
and OpenJPEG); JPEG XL comes from the ``pillow-jxl-plugin`` package. Each codec turns an image
(C, H, W) float in [0, 1] (C = 3 for RGB, 1 for grey; rounded to 8 bits first) into the bytes of a
complete file at one quality setting, and those bytes back into (C, H, W) float in [0, 1].

Quality settings are each codec's own knob, listed from the lowest to the highest rate:

========  ==========================================================  ========================
codec     setting                                                     default points
========  ==========================================================  ========================
jpeg      libjpeg quality 1–100 (4:2:0, optimised Huffman tables)     5 10 20 35 50 75 90
webp      libwebp quality 0–100 (method 4)                            5 15 30 50 70 90
avif      libavif quality 0–100 (speed 6, 4:2:0)                      10 25 40 55 70 85
jpeg2000  target bits per pixel (OpenJPEG, 9/7 wavelet, YCbCr)        0.0625 … 2 (×2 steps)
jxl       libjxl quality 0–100 (effort 7)                             10 30 50 70 85 95
========  ==========================================================  ========================

A codec whose library is missing is not an error: :func:`unavailable_reason` says why, and
:func:`available_codecs` splits a request into usable codecs and skipped ones with reasons.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch
from PIL import Image, features

from shared.data.images import to_tensor
from shared.errors import UserError

Name = Literal["jpeg", "webp", "avif", "jpeg2000", "jxl"]
NAMES: tuple[str, ...] = get_args(Name)

#: default quality settings per codec, from the lowest to the highest rate
DEFAULT_QUALITIES: dict[str, tuple[float, ...]] = {
    "jpeg": (5, 10, 20, 35, 50, 75, 90),
    "webp": (5, 15, 30, 50, 70, 90),
    "avif": (10, 25, 40, 55, 70, 85),
    "jpeg2000": (0.0625, 0.125, 0.25, 0.5, 1.0, 2.0),
    "jxl": (10, 30, 50, 70, 85, 95),
}
#: what the quality setting of each codec means (for tables and plots)
SETTING: dict[str, str] = {
    "jpeg": "quality (1–100)",
    "webp": "quality (0–100)",
    "avif": "quality (0–100)",
    "jpeg2000": "target bpp",
    "jxl": "quality (0–100)",
}
#: the Pillow feature each codec needs (None: a plugin package instead)
_PIL_FEATURE: dict[str, str | None] = {"jpeg": "jpg", "webp": "webp", "avif": "avif", "jpeg2000": "jpg_2000", "jxl": None}
_PIL_FORMAT: dict[str, str] = {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF", "jpeg2000": "JPEG2000", "jxl": "JXL"}


def unavailable_reason(name: str) -> str | None:
    """Why codec ``name`` cannot run here (a missing library), or None when it can."""
    if name not in NAMES:
        raise UserError(f"unknown classical codec {name!r}; choose from {', '.join(NAMES)}")
    feature = _PIL_FEATURE[name]
    if feature is not None:
        return None if features.check(feature) else f"this Pillow was built without {feature} support (see PIL.features.pilinfo())"
    try:
        import pillow_jxl  # noqa: F401  (registers the JXL format with Pillow)
    except ImportError:
        return "the JPEG XL plugin is not installed: pip install pillow-jxl-plugin"
    return None


def to_pil(img: torch.Tensor) -> Image.Image:
    """(C, H, W) float in [0, 1], C ∈ {1, 3} → an 8-bit PIL image (``L`` or ``RGB``), rounded."""
    if img.ndim != 3 or img.shape[0] not in (1, 3):
        raise UserError(f"a codec takes one (C, H, W) image with C = 1 or 3, not shape {tuple(img.shape)}")
    arr = img.detach().float().cpu().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(arr[..., 0] if arr.shape[2] == 1 else arr), "L" if arr.shape[2] == 1 else "RGB")


@dataclass(frozen=True)
class ClassicalCodec:
    """One classical codec. ``qualities``: its settings from the lowest to the highest rate;
    ``threads``: the encoder threads it may use (AVIF and JPEG XL; the others run on one)."""

    name: Name
    qualities: tuple[float, ...]
    threads: int = 1

    def options(self, quality: float, channels: int) -> dict:
        """Pillow ``save`` options for one quality setting."""
        q = float(quality)
        match self.name:
            case "jpeg":
                return {"quality": int(round(q)), "subsampling": "4:2:0", "optimize": True}
            case "webp":
                return {"quality": q, "method": 4}
            case "avif":
                return {"quality": int(round(q)), "speed": 6, "max_threads": self.threads}
            case "jpeg2000":
                # OpenJPEG's "rates" are compression ratios against the raw 8-bit samples
                return {"quality_mode": "rates", "quality_layers": [8.0 * channels / q], "irreversible": True, "mct": 1 if channels == 3 else 0}
            case "jxl":
                return {"quality": q, "effort": 7, "num_threads": self.threads}
        raise AssertionError(self.name)

    def encode(self, img: torch.Tensor, quality: float) -> bytes:
        """(C, H, W) in [0, 1] → the bytes of a complete file at ``quality``."""
        pil = to_pil(img)
        buf = io.BytesIO()
        pil.save(buf, format=_PIL_FORMAT[self.name], **self.options(quality, len(pil.getbands())))
        return buf.getvalue()

    def decode(self, data: bytes, mode: Literal["RGB", "L"] = "RGB") -> torch.Tensor:
        """File bytes → (C, H, W) float in [0, 1] (C = 3 for ``RGB``, 1 for ``L``)."""
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return to_tensor(im.convert(mode))


def classical_codec(name: str, qualities: tuple[float, ...] | None = None, threads: int = 1) -> ClassicalCodec:
    """Codec ``name`` with ``qualities`` (default :data:`DEFAULT_QUALITIES`; sorted, repeats dropped);
    a missing library is a UserError."""
    reason = unavailable_reason(name)
    if reason is not None:
        raise UserError(f"codec {name} is unavailable: {reason}")
    qualities = tuple(sorted({float(q) for q in (qualities or DEFAULT_QUALITIES[name])}))
    if name == "jpeg2000" and any(q <= 0 for q in qualities):
        raise UserError(f"jpeg2000 settings are target bits per pixel and must be positive, got {qualities}")
    return ClassicalCodec(name, qualities, threads)  # type: ignore[arg-type]


def available_codecs(names, threads: int = 1) -> tuple[list[ClassicalCodec], dict[str, str]]:
    """``names`` → (the usable codecs, {skipped name: reason}); unknown names are a UserError."""
    usable, skipped = [], {}
    for name in names:
        reason = unavailable_reason(name)
        if reason is None:
            usable.append(classical_codec(name, threads=threads))
        else:
            skipped[name] = reason
    return usable, skipped
