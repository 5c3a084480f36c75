"""Per-image BD-rates for ``compress eval``: the distribution over images, not only the mean curve.

A codec can win on the mean curve and still lose badly on some images (issue 23). From the eval's
per-image rows (one per image, codec and quality: ``bpp`` and ``psnr``), :func:`per_image_bd_rates`
computes each image's BD-rate (PSNR) of every codec against each anchor (JPEG, AVIF);
:func:`summarise` gives per content type (:func:`compress.content_benchmark.content_types`; one
type, ``all``, otherwise) and over all images the worst image, the median and the mean;
:func:`write_per_image_bd` writes ``per_image_bd.json``, ``per_image_bd.md`` and
``per_image_bd.png`` (each image's BD-rate against each anchor, by content type).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from shared.errors import UserError
from shared.metrics.rate_distortion import bd_rate, efficient_points

ANCHORS = ("jpeg", "avif")
ALL = "all"


def per_image_bd_rates(rows: Sequence[Mapping], codecs: Sequence[str], anchors: Sequence[str] = ANCHORS) -> list[dict]:
    """Eval rows → one entry per (image, codec, anchor), for each codec of ``codecs`` that is not the
    anchor: ``bd_rate_psnr`` in %, computed on each curve's efficient points
    (:func:`~shared.metrics.rate_distortion.efficient_points`: with ``--safeguard`` several
    qualities may store the same file), and ``note``: None, or why ``bd_rate_psnr`` is None (too few
    distinct points, no PSNR overlap, or bd_rate's own reason)."""
    curves: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in rows:
        curves.setdefault((r["image"], r["codec"]), []).append((r["bpp"], r["psnr"]))
    images = list(dict.fromkeys(r["image"] for r in rows))
    out = []
    for anchor in anchors:
        for codec in codecs:
            if codec == anchor:
                continue
            for image in images:
                a, t = curves.get((image, anchor)), curves.get((image, codec))
                if not a or not t:
                    continue
                value, note = _bd_rate_or_why({anchor: a, codec: t})
                out.append({"image": image, "codec": codec, "anchor": anchor, "bd_rate_psnr": value, "note": note})
    return out


def _bd_rate_or_why(curves: Mapping[str, Sequence[tuple[float, float]]]) -> tuple[float | None, str | None]:
    """{anchor: [(bpp, psnr)], test: [(bpp, psnr)]} (that order) → (BD-rate % on their efficient
    points, None) or (None, why it is undefined)."""
    reduced = {name: efficient_points(*zip(*pts)) for name, pts in curves.items()}
    few = [f"{name}: {len(r)}" for name, (r, _) in reduced.items() if len(r) < 2]  # bd_rate needs two
    if few:
        return None, f"too few distinct points ({', '.join(few)})"
    (ra, qa), (rt, qt) = reduced.values()
    if not max(qa[0], qt[0]) < min(qa[-1], qt[-1]):
        return None, f"no PSNR overlap ([{qa[0]:.1f}, {qa[-1]:.1f}] vs [{qt[0]:.1f}, {qt[-1]:.1f}] dB)"
    try:
        return bd_rate(ra, qa, rt, qt), None
    except UserError as e:  # non-finite points (an identical image's PSNR is +inf)
        return None, str(e)


def summarise(entries: Sequence[Mapping], types: Mapping[str, str] | None = None) -> dict:
    """{anchor: {codec: {type: {images, worst, worst_image, median, mean, undefined}}}}, BD-rates
    in %, per content type of ``types`` ({image: type}; images it does not name are ``other``) and
    over all images (``all``); ``undefined``: {image: note} of the images without a BD-rate, which
    worst, median and mean leave out."""
    out: dict = {}
    for e in entries:
        kinds = [ALL] + ([types.get(e["image"], "other")] if types else [])
        for kind in kinds:
            out.setdefault(e["anchor"], {}).setdefault(e["codec"], {}).setdefault(kind, []).append(e)
    for anchor, by_codec in out.items():
        for codec, by_type in by_codec.items():
            for kind, group in by_type.items():
                values = [(g["bd_rate_psnr"], g["image"]) for g in group if g["bd_rate_psnr"] is not None]
                worst = max(values) if values else (math.nan, None)
                v = np.array([x for x, _ in values]) if values else np.array([math.nan])
                by_type[kind] = {"images": len(group), "worst": float(worst[0]), "worst_image": worst[1],
                                 "median": float(np.median(v)), "mean": float(np.mean(v)),
                                 "undefined": {g["image"]: g["note"] for g in group if g["bd_rate_psnr"] is None}}
    return out


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.1f} %"


def markdown(summary: Mapping) -> str:
    """The summary as Markdown: per anchor, one row per (codec, content type), then the images
    without a BD-rate and why."""
    if not summary:
        return "(no per-image BD-rates: neither JPEG nor AVIF was evaluated)"
    lines = []
    for anchor, by_codec in summary.items():
        lines += [f"Per-image BD-rate (PSNR) against {anchor.upper()}:", "",
                  "| codec | content | images | worst | median | mean | worst image |", "|---|---|---:|---:|---:|---:|---|"]
        for codec, by_type in by_codec.items():
            for kind in sorted(by_type, key=lambda k: (k != ALL, k)):
                s = by_type[kind]
                cells = [codec, kind, s["images"], *(_pct(s[k]) for k in ("worst", "median", "mean")), s["worst_image"] or "n/a"]
                lines.append("| " + " | ".join(map(str, cells)) + " |")
        lines.append("")
        for codec, by_type in by_codec.items():
            undefined = by_type[ALL]["undefined"]
            if undefined:
                lines += [f"No BD-rate of {codec} against {anchor.upper()} on {len(undefined)} images: "
                          + "; ".join(f"{image}: {note}" for image, note in undefined.items()), ""]
    return "\n".join(lines).rstrip()


def plot(entries: Sequence[Mapping], types: Mapping[str, str] | None, path: Path, title: str) -> Path:
    """One panel per anchor: each image's BD-rate (x) of each codec, one row per content type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from shared.plotting import save_figure

    anchors = list(dict.fromkeys(e["anchor"] for e in entries))
    codecs = list(dict.fromkeys(e["codec"] for e in entries))
    kinds = sorted({types.get(e["image"], "other") for e in entries}) if types else [ALL]
    fig, axes = plt.subplots(1, len(anchors), figsize=(5.5 * len(anchors), 1.2 + 0.38 * len(kinds)), squeeze=False, sharey=True)
    for ax, anchor in zip(axes[0], anchors):
        for j, codec in enumerate(codecs):
            sel = [e for e in entries if e["anchor"] == anchor and e["codec"] == codec and e["bd_rate_psnr"] is not None]
            ys = [kinds.index(types.get(e["image"], "other") if types else ALL) + (j - (len(codecs) - 1) / 2) * 0.18 for e in sel]
            ax.scatter([e["bd_rate_psnr"] for e in sel], ys, s=14, label=codec)
        ax.axvline(0, color="k", lw=0.8)
        ax.set(xscale="symlog", xlabel=f"BD-rate (PSNR) against {anchor.upper()}, % (symlog)", title=title)
        ax.set_yticks(range(len(kinds)), kinds)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    return save_figure(fig, path)


def _finite(v):
    """NaN → None throughout (JSON has no NaN)."""
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite(x) for x in v]
    return None if isinstance(v, float) and math.isnan(v) else v


def write_per_image_bd(rows: Sequence[Mapping], codecs: Sequence[str], types: Mapping[str, str] | None, out_dir: Path, title: str) -> tuple[list[Path], str]:
    """Compute, summarise and write the per-image BD-rates into ``out_dir``; returns (the files, the Markdown)."""
    entries = per_image_bd_rates(rows, codecs)
    summary = summarise(entries, types)
    text = markdown(summary)
    out = Path(out_dir)
    (out / "per_image_bd.json").write_text(json.dumps(_finite({"images": entries, "summary": summary}), indent=1))
    (out / "per_image_bd.md").write_text(text + "\n")
    files = [out / "per_image_bd.json", out / "per_image_bd.md"]
    if entries:
        files.append(plot(entries, types, out / "per_image_bd.png", title))
    return files, text
