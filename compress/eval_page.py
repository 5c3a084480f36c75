"""``compress eval``'s page: ``index.html`` with before/after sliders of a few evaluated images.

Each image (the first ``limit``) is encoded once by the learned codec at one quality and decoded;
each classical codec (JPEG and AVIF by default) is encoded at the highest quality whose file is no
bigger than ensō's (:func:`compress.demo.jpeg_at_size`, the one same-size search). Per image the page
shows three sliders, as ``compress demo`` does: the original against ensō, and each classical
codec against ensō, with bits per pixel (the whole file), PSNR and LPIPS under each side; LPIPS is
marked unavailable when its AlexNet backbone is not found offline. The pictures are PNGs (8 bits,
what every browser reads) under ``out/images/``, beside the page (:mod:`shared.webpage`).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

import torch

from shared.data.images import load_image, save_image
from shared.errors import UserError
from shared.metrics.image import psnr
from shared.metrics.perceptual import lpips_distance, lpips_model, resolve_alexnet_weights
from shared.webpage import Side, Slider, write_page

from . import classical as classical_codecs
from .codec import DEFAULT_CODEC, Codec
from .demo import CLASSICAL, jpeg_at_size

#: images on the page unless told otherwise: each costs four PNGs and a same-size search per classical codec
DEFAULT_LIMIT = 8


def _numbers(bpp: float, db: float, lp: float | None) -> str:
    return f"{bpp:.3f} bpp · PSNR {db:.2f} dB · " + (f"LPIPS {lp:.3f}" if lp is not None else "LPIPS n/a")


def _label(name: str) -> str:
    return CLASSICAL.get(name, (name.upper(),))[0]


def _file_stems(images: Sequence[Path]) -> list[str]:
    """A distinct, URL-safe file stem per image (its name's letters, digits, ``.``, ``_`` and ``-``)."""
    stems: list[str] = []
    for i, path in enumerate(images):
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", Path(path).stem) or "image"
        stems.append(stem if stem not in stems else f"{stem}-{i}")
    return stems


def write_eval_page(
    images: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    codec: Codec | str | os.PathLike = DEFAULT_CODEC,
    quality: float = 0.5,
    refine: int = 0,
    lpips_weights: str | os.PathLike | None = None,
    allow_download: bool | None = None,
    classical: Sequence[str] = ("jpeg", "avif"),
    limit: int | None = DEFAULT_LIMIT,
    progress: bool = False,
) -> Path:
    """Write ``out/index.html`` and its PNGs under ``out/images/`` for the first ``limit`` of ``images``
    (image files, loaded as RGB; ``limit`` None: all); returns the page's path.

    ``codec``: a loaded :class:`Codec`, or a shipped name / exported folder for :meth:`Codec.load`;
    it encodes at ``quality`` in [0, 1] with ``refine`` latent refinement steps. ``classical``: the
    codecs shown at ensō's file size (names of :mod:`compress.classical` with a 0/1–100 quality; one
    whose library is missing is listed on the page as skipped, with its reason). When no classical
    file fits, its smallest (quality 1) is shown and its caption says it is larger. LPIPS uses
    ``lpips_weights`` (found as :func:`shared.metrics.perceptual.resolve_alexnet_weights` finds them);
    without them the page says LPIPS is unavailable and why. Raises ValueError for no images, a
    ``limit`` below 1, a quality outside [0, 1] or a codec without a 1–100 quality; UserError when
    an image or the codec cannot load."""
    from tqdm.auto import tqdm

    from .evaluate import quantize  # here: compress.evaluate imports this module

    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1 image (or None: all), not {limit}")
    if not 0 <= quality <= 1:
        raise ValueError(f"quality must be in [0, 1], not {quality}")
    if not images:
        raise ValueError("no images to show")
    for name in classical:
        if name in classical_codecs.NAMES and not classical_codecs.SETTING[name].startswith("quality"):
            raise ValueError(f"{name} is set by {classical_codecs.SETTING[name]}, not a quality; the same-size search takes {', '.join(CLASSICAL)}")
    shown = [Path(p) for p in images[: limit or None]]
    skipped = {name: reason for name in classical if (reason := classical_codecs.unavailable_reason(name)) is not None}
    running = [name for name in dict.fromkeys(classical) if name not in skipped]
    codec = codec if isinstance(codec, Codec) else Codec.load(codec)
    try:
        weights, lpips_missing = resolve_alexnet_weights(lpips_weights, allow_download), None
        lpips_model(weights)  # a file that cannot be read is unavailable too
    except UserError as e:
        weights, lpips_missing = None, str(e)

    out = Path(out)
    enso_label = f"ensō {codec.model_id} q={quality:g}" + (f", {refine} refinement steps" if refine else "")
    sections, scores = [], {}  # label → [(bpp, PSNR, LPIPS or None) per image]
    for path, stem in zip(tqdm(shown, desc="eval page", unit="img", disable=not progress), _file_stems(shown)):
        x = load_image(path, "RGB")
        pixels = x.shape[1] * x.shape[2]
        data = codec.encode(x, quality, refine)
        sides = [(enso_label, enso_label, len(data), quantize(codec.decode(data).detach().float().cpu()), f"images/{stem}_enso.png")]
        for name in running:
            coded, q = jpeg_at_size(x, len(data), name)
            rec = quantize(classical_codecs.classical_codec(name).decode(coded))
            fits = "same size or less" if len(coded) <= len(data) else "its smallest file, larger than ensō's"
            sides.append((f"{_label(name)} q={q} ({fits})", _label(name), len(coded), rec, f"images/{stem}_{name}.png"))
        recs = torch.stack([rec for *_, rec, _ in sides])
        dbs = psnr(x[None].expand_as(recs), recs).tolist()
        lps = lpips_distance(x[None].expand_as(recs), recs, weights).tolist() if weights is not None else [None] * len(sides)
        save_image(x, out / f"images/{stem}.png")
        for (caption, label, size, rec, src), db, lp in zip(sides, dbs, lps):
            save_image(rec, out / src)
            scores.setdefault(label, []).append((size * 8 / pixels, db, lp))
        enso = Side(sides[0][0], sides[0][4], _numbers(sides[0][2] * 8 / pixels, dbs[0], lps[0]))
        sliders = [Slider("original | ensō", Side("original", f"images/{stem}.png", f"{x.shape[2]}×{x.shape[1]}"), enso)]
        sliders += [Slider(f"{label} | ensō", Side(caption, src, _numbers(size * 8 / pixels, db, lp)), enso)
                    for (caption, label, size, _, src), db, lp in zip(sides[1:], dbs[1:], lps[1:])]
        sections.append((f"{path.name} ({x.shape[2]}×{x.shape[1]})", sliders))

    summary = {"images shown": f"{len(shown)} of {len(images)}" + (f" (the first {len(shown)})" if len(shown) < len(images) else "")}
    for label, found in scores.items():
        bpps, dbs, lps = zip(*found)
        summary[f"{label}, mean"] = _numbers(sum(bpps) / len(bpps), sum(dbs) / len(dbs), None if None in lps else sum(lps) / len(lps))
    summary["same size"] = "each classical file is the highest quality whose file is no bigger than ensō's; bpp counts the whole file"
    summary["LPIPS"] = "AlexNet, lower is better" if lpips_missing is None else f"unavailable: {lpips_missing}"
    for name, reason in skipped.items():
        summary[f"{_label(name)} skipped"] = reason
    against = ", ".join(map(_label, running)) or "the original"
    return write_page(out / "index.html", f"ensō compress eval: {enso_label} against {against}", sections, summary)
