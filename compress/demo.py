"""``compress demo``: a round trip on a photo that ships with matplotlib, beside JPEG at the same size.

Encodes the photo with the shipped codec, decodes it, and encodes JPEG at the largest quality
whose file is no bigger than ours; prints bits per pixel and PSNR for both and writes the files.
"""
from __future__ import annotations

from pathlib import Path

import torch

from shared.config import atomic_write_bytes
from shared.data.images import load_image, sample_photo, save_image
from shared.metrics.image import psnr

from .classical import classical_codec
from .codec import Codec


def jpeg_at_size(img: torch.Tensor, max_bytes: int) -> tuple[bytes, int]:
    """The largest-quality JPEG (Pillow, 4:2:0) of ``img`` within ``max_bytes``, and its quality."""
    jpeg = classical_codec("jpeg")
    best, best_q = jpeg.encode(img, 1), 1
    lo, hi = 2, 100
    while lo <= hi:
        q = (lo + hi) // 2
        data = jpeg.encode(img, q)
        if len(data) <= max_bytes:
            best, best_q, lo = data, q, q + 1
        else:
            hi = q - 1
    return best, best_q


def run_demo(out: Path, image: Path | None, model: str, quality: float) -> dict:
    """Round-trip ``image`` (default: the bundled photo) and JPEG at the same size into ``out``."""
    src = image or sample_photo()
    img = load_image(src, "RGB")
    pixels = img.shape[1] * img.shape[2]
    codec = Codec.load(model)
    data = codec.encode(img, quality)
    ours = codec.decode(data)
    jpeg_bytes, jpeg_q = jpeg_at_size(img, len(data))
    jpeg = classical_codec("jpeg").decode(jpeg_bytes)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "photo.enso", data)
    save_image(ours, out / "photo_enso.png")
    atomic_write_bytes(out / "photo_jpeg.jpg", jpeg_bytes)
    rows = {
        f"ensō {codec.model_id} q={quality:g}": (len(data), float(psnr(ours[None], img[None]))),
        f"JPEG q={jpeg_q} (same size or less)": (len(jpeg_bytes), float(psnr(jpeg[None], img[None]))),
    }
    print(f"{src.name}: {img.shape[2]}×{img.shape[1]} → {out}/")
    for name, (size, db) in rows.items():
        print(f"  {name:34s} {size:7,d} bytes  {size * 8 / pixels:.3f} bpp  PSNR {db:.2f} dB")
    return rows
