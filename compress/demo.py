"""``compress demo``: a round trip on a photo that ships with matplotlib, beside JPEG and AVIF at the same size.

Encodes the photo with the shipped codec, decodes it, and encodes JPEG (and AVIF, where Pillow has
it) at the largest quality whose file is no bigger than ours; prints bits per pixel, PSNR and
LPIPS (where its AlexNet weights are found offline) for each, and writes the files and
``index.html``, a page of before/after sliders (:mod:`shared.webpage`): the original against
ensō, and each classical codec against ensō.
"""
from __future__ import annotations

from pathlib import Path

import torch

from shared.config import atomic_write_bytes
from shared.data.images import load_image, sample_photo, save_image
from shared.errors import UserError
from shared.metrics.image import psnr
from shared.webpage import Side, Slider, write_page

from .classical import classical_codec, unavailable_reason
from .codec import Codec
from .options import DemoOptions

#: the classical codecs shown beside ours: name → (label, file suffix)
CLASSICAL = {"jpeg": ("JPEG", "jpg"), "avif": ("AVIF", "avif")}


def jpeg_at_size(img: torch.Tensor, max_bytes: int, name: str = "jpeg") -> tuple[bytes, int]:
    """The largest-quality file of classical codec ``name`` (default JPEG: Pillow, 4:2:0; its
    quality 1–100) of ``img`` within ``max_bytes``, and its quality (1 when none fits)."""
    codec = classical_codec(name)
    best, best_q = codec.encode(img, 1), 1
    lo, hi = 2, 100
    while lo <= hi:
        q = (lo + hi) // 2
        data = codec.encode(img, q)
        if len(data) <= max_bytes:
            best, best_q, lo = data, q, q + 1
        else:
            hi = q - 1
    return best, best_q


def lpips_or_none(x: torch.Tensor, recs: list[torch.Tensor]) -> list[float | None]:
    """LPIPS of each reconstruction against ``x`` (3, H, W), or None each when no AlexNet weights are found offline."""
    from shared.metrics.perceptual import lpips_distance

    try:
        return [float(v) for v in lpips_distance(x[None].expand(len(recs), -1, -1, -1), torch.stack(recs))]
    except UserError:
        return [None] * len(recs)


def run_demo(out: Path, options: DemoOptions | None = None) -> dict:
    """Round-trip the photo of ``options`` (:class:`~compress.options.DemoOptions`; None: its
    defaults, the bundled photo), JPEG and AVIF at the same size into ``out`` (files and
    ``index.html``); returns {name: (bytes, PSNR dB, LPIPS or None)}."""
    o = options or DemoOptions()
    quality = o.quality
    src = o.image or sample_photo()
    img = load_image(src, "RGB")
    pixels = img.shape[1] * img.shape[2]
    codec = Codec.load(o.model)
    data = codec.encode(img, quality)
    ours = codec.decode(data)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "photo.enso", data)
    save_image(img, out / "photo.png")
    save_image(ours, out / "photo_enso.png")
    results = {f"ensō {codec.model_id} q={quality:g}": (len(data), ours, "photo_enso.png")}
    for name, (label, suffix) in CLASSICAL.items():
        if unavailable_reason(name) is not None:
            continue
        coded, q = jpeg_at_size(img, len(data), name)
        atomic_write_bytes(out / f"photo_{name}.{suffix}", coded)
        decoded = classical_codec(name).decode(coded)
        save_image(decoded, out / f"photo_{name}.png")  # what the page shows: every browser reads PNG
        results[f"{label} q={q} (same size or less)"] = (len(coded), decoded, f"photo_{name}.png")
    lpips = lpips_or_none(img, [rec for _, rec, _ in results.values()])
    rows = {k: (size, float(psnr(rec[None], img[None])), lp) for (k, (size, rec, _)), lp in zip(results.items(), lpips)}
    numbers = {k: f"{size * 8 / pixels:.3f} bpp · PSNR {db:.2f} dB" + (f" · LPIPS {lp:.3f}" if lp is not None else "") for k, (size, db, lp) in rows.items()}
    names = list(results)
    enso = Side(names[0], results[names[0]][2], numbers[names[0]])
    sliders = [Slider("original | ensō", Side("original", "photo.png", f"{img.shape[2]}×{img.shape[1]}"), enso)]
    sliders += [Slider(f"{k.split()[0]} | ensō", Side(k, results[k][2], numbers[k]), enso) for k in names[1:]]
    write_page(out / "index.html", f"ensō compress demo: {Path(src).name}", [("drag the sliders to compare", sliders)], numbers)
    print(f"{Path(src).name}: {img.shape[2]}×{img.shape[1]} → {out}/ (open index.html)")
    for name, (size, db, lp) in rows.items():
        print(f"  {name:34s} {size:7,d} bytes  {size * 8 / pixels:.3f} bpp  PSNR {db:.2f} dB" + (f"  LPIPS {lp:.3f}" if lp is not None else ""))
    return rows
