"""Rate–distortion evaluation of codecs on a folder of images: ``compress eval``.

    compress eval [--data DIR] [--codecs ours,jpeg,webp,avif,jpeg2000,jxl] -o OUT [--model NAME_OR_PATH ...]
                  [--quality CODEC=Q1,Q2,...] [--refine STEPS] [--limit N] [--threads 1] [--lpips-weights FILE] [--allow-download]

Every image (loaded as RGB, float in [0, 1]) is encoded by every codec at each of its quality
settings, to the bytes of a complete file, and decoded back; the output is rounded to 8 bits. Per
image and point: ``bpp`` (the whole file, header included, × 8 over the original H·W), ``psnr``
(dB, RGB), ``ms_ssim_db`` (−10·log10(1 − MS-SSIM)), ``lpips`` (AlexNet; lower is better) and the
encode/decode seconds. Written to ``OUT``:

* ``per_image.csv`` and ``per_image.json``: one row per (image, codec, quality);
* ``points.csv`` and ``points.json``: each codec's points, averaged over images at each setting
  (``points.json`` also lists skipped codecs and why);
* ``rd_psnr.png``, ``rd_ms_ssim_db.png``, ``rd_lpips.png``: one curve per codec against bpp;
* ``bd_rate.json`` and ``bd_rate.md``: BD-rate (PSNR and MS-SSIM dB) and BD-PSNR of each codec
  against JPEG and against AVIF (when those ran), also printed as a Markdown table.
* ``per_image_bd.json``, ``per_image_bd.md``, ``per_image_bd.png``: each image's BD-rate (PSNR)
  against JPEG and AVIF, and its worst image, median and mean per content type when the folder has
  a ``content.json`` (:mod:`compress.content_benchmark`), also printed (:mod:`compress.per_image`).

``ours`` is the learned codec through ``compress.codec.Codec.load(NAME_OR_PATH)``, at qualities in
[0, 1] (several ``--model``: one codec each, ``ours:NAME``); the classical codecs are in :mod:`compress.classical`. A codec whose library is missing is
skipped with its reason. ``ours-perceptual`` decodes ``ours``'s very files (encoded once, so both
have the same bytes at each quality) with a perceptual decoder (``--perceptual-decoder FOLDER``,
default the shipped one; skipped with its reason when none is shipped). ``--perceptual-metrics``
adds KID on 256² patches, the high-frequency measure, a paired bootstrap between the two decoders,
BD-rate at equal LPIPS and a figure of crops (:mod:`compress.perceptual_eval`).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from shared.data.images import list_images, load_image
from shared.errors import UserError
from shared.metrics.image import psnr
from shared.metrics.perceptual import lpips_distance, lpips_model, resolve_alexnet_weights
from shared.metrics.rate_distortion import bd_psnr, bd_rate, efficient_points
from shared.metrics.structural import MIN_SIDE, ms_ssim_db
from shared.paths import data_dir as resolve_data_dir
from shared.threads import use_threads

from . import classical
from .codec import DEFAULT_CODEC
from .content_benchmark import content_types
from .options import ALL_CODECS, PERCEPTUAL, EvalOptions, add_eval_arguments, options_from_args
from .per_image import write_per_image_bd
from .perceptual_eval import ROW_KEYS, PerceptualMetrics

#: the learned codec's default qualities (its own scale, [0, 1])
OURS_QUALITIES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
#: the learned codec ``ours`` loads when no --model is given (a shipped codec name)
DEFAULT_OURS_MODEL = DEFAULT_CODEC
ANCHORS = ("jpeg", "avif")
METRICS = ("bpp", "psnr", "ms_ssim_db", "lpips")
#: plot files: metric → (file, axis label)
PLOTS = {"psnr": ("rd_psnr.png", "PSNR (dB, RGB)"), "ms_ssim_db": ("rd_ms_ssim_db.png", "MS-SSIM (dB)"), "lpips": ("rd_lpips.png", "LPIPS (AlexNet, lower is better)")}


@dataclass
class RDCodec:
    """A codec as the evaluation sees it: ``encode(img (C, H, W) in [0, 1], quality) -> bytes`` and
    ``decode(bytes) -> (C, H, W) in [0, 1]``, run at each of ``qualities`` (lowest rate first)."""

    name: str
    qualities: tuple[float, ...]
    encode: Callable[[torch.Tensor, float], bytes]
    decode: Callable[[bytes], torch.Tensor]
    setting: str = "quality"
    #: the codec whose files this one decodes (the eval encodes once for both), None: its own
    bitstream: str | None = None


def ours_qualities(qualities: Sequence[float] | None = None) -> tuple[float, ...]:
    """The learned codec's quality settings (default :data:`OURS_QUALITIES`), checked to lie in [0, 1]."""
    qualities = tuple(sorted({float(q) for q in (qualities or OURS_QUALITIES)}))
    if any(not 0.0 <= q <= 1.0 for q in qualities):
        raise UserError(f"qualities of ours lie in [0, 1], got {qualities}")
    return qualities


def load_ours(model: str | None = None, qualities: Sequence[float] | None = None, refine: int = 0, name: str = "ours", safeguard: bool = False,
              decoder: str | Path = "mse", bitstream: str | None = None) -> RDCodec:
    """The learned codec through ``compress.codec.Codec.load(model or DEFAULT_OURS_MODEL)``, named
    ``name``, encoding with ``refine`` latent refinement steps and decoding with ``decoder``
    (``Codec.decode``'s: mse, perceptual or a folder; checked here); raises ModuleNotFoundError when
    ``compress.codec`` is absent, UserError when the model or the decoder cannot load."""
    from compress.codec import Codec  # lazily: the codec API is optional for everything else

    qualities = ours_qualities(qualities)
    codec = Codec.load(model or DEFAULT_OURS_MODEL)
    setting = "quality in [0, 1]" + (f", {refine} refinement steps" if refine else "") + (", safeguard" if safeguard else "")
    decoding = {} if str(decoder) == "mse" else {"decoder": str(decoder)}
    if decoding:
        try:
            codec.perceptual_synthesis(None if str(decoder) == "perceptual" else decoder)
        except ValueError as e:
            raise UserError(f"{e}; pass --perceptual-decoder FOLDER") from None
        setting += f", {decoder} decoder"
    return RDCodec(name, qualities, lambda img, q: codec.encode(img, q, refine, **({'safeguard': True} if safeguard else {})),
                   lambda data: codec.decode(data, **decoding).detach().float().cpu(), setting, bitstream)


def ours_names(models: Sequence[str]) -> list[str]:
    """The result names of the learned codecs: "ours" for one model, "ours:NAME" (the shipped name or
    the folder's name) for each of several."""
    return ["ours"] if len(models) <= 1 else [f"ours:{Path(m).name}" for m in models]


def resolve_codecs(
    names: Sequence[str], model: str | Sequence[str] | None = None, qualities: Mapping[str, Sequence[float]] | None = None,
    threads: int = 1, refine: int = 0, safeguard: bool = False, perceptual_decoder: str | Path | None = None,
) -> tuple[list[RDCodec], dict[str, str]]:
    """Codec names → (the codecs to run, {skipped name: reason}); ``model``: the learned codec(s) for
    "ours" (several are named by :func:`ours_names`); ``perceptual_decoder``: the folder
    "ours-perceptual" decodes with (None: the shipped one). Unknown names are a UserError."""
    models = [model] if model is None or isinstance(model, (str, Path)) else list(model)
    if len(set(ours_names(models))) < len(models):
        raise UserError(f"--model names {', '.join(map(str, models))} share a name; give each learned codec a distinct folder name")
    qualities = qualities or {}
    unknown = [n for n in list(names) + list(qualities) if n not in ALL_CODECS + (PERCEPTUAL,)]
    if unknown:
        raise UserError(f"unknown codec(s) {', '.join(unknown)}; choose from {', '.join(ALL_CODECS + (PERCEPTUAL,))}")
    if PERCEPTUAL in qualities:
        raise UserError(f"{PERCEPTUAL} decodes ours's files at ours's qualities; set them with --quality ours=...")
    if PERCEPTUAL in names and len(models) > 1:
        raise UserError(f"{PERCEPTUAL} decodes one codec's files; give one --model, not {len(models)}")
    codecs, skipped = [], {}
    for name in dict.fromkeys(names):
        if name in ("ours", PERCEPTUAL):
            ours_qualities(qualities.get("ours"))
            for m, label in zip(models, ours_names(models)):
                shown, decoding = (label, ("mse", None)) if name == "ours" else (name, (perceptual_decoder or "perceptual", label))
                try:
                    codecs.append(load_ours(m, qualities.get("ours"), refine, shown, safeguard, *decoding))
                except ModuleNotFoundError as e:
                    if e.name not in ("compress.codec", "compress.container"):
                        raise
                    skipped[shown] = f"the learned codec's API ({e.name}) is not available in this checkout"
                except UserError as e:
                    if m or (name == PERCEPTUAL and perceptual_decoder):  # the user named it: failing to load it is their error to see
                        raise
                    skipped[shown] = str(e) if name == PERCEPTUAL else f"the default codec {DEFAULT_OURS_MODEL!r} cannot load ({e}); pass --model NAME_OR_PATH"
            continue
        reason = classical.unavailable_reason(name)
        if reason is not None:
            skipped[name] = reason
            continue
        c = classical.classical_codec(name, tuple(qualities[name]) if name in qualities else None, threads)
        codecs.append(RDCodec(name, c.qualities, c.encode, c.decode, classical.SETTING[name]))
    return codecs, skipped


def quantize(img: torch.Tensor) -> torch.Tensor:
    """Round to 8 bits, as a decoder writing a PNG would: float in [0, 1] → float on the 1/255 grid."""
    return img.float().clamp(0, 1).mul(255).round().div(255)


def measure(x: torch.Tensor, recs: torch.Tensor, lpips_weights: str | Path | None = None) -> dict[str, torch.Tensor]:
    """Original (C, H, W) and P reconstructions (P, C, H, W), in [0, 1] → {metric: (P,)}; MS-SSIM is
    NaN for images too small for its five scales (160 pixels or less on a side)."""
    xs = x.unsqueeze(0).expand_as(recs)
    small = min(x.shape[-2:]) <= MIN_SIDE
    return {
        "psnr": psnr(xs, recs),
        "ms_ssim_db": torch.full((len(recs),), math.nan) if small else ms_ssim_db(xs, recs),
        "lpips": lpips_distance(xs, recs, lpips_weights),
    }


def _finite(v: Any) -> Any:
    return v if not isinstance(v, float) or math.isfinite(v) else None


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def average_points(rows: list[dict], codecs: list[RDCodec]) -> dict[str, list[dict]]:
    """Per-image rows → {codec: [one point per quality: the mean over images of each measure]};
    images without a value (MS-SSIM of images too small for it, :func:`measure`) are left out of
    that measure's mean, which is NaN only when no image has one."""
    out = {}
    for c in codecs:
        points = []
        for q in c.qualities:
            sel = [r for r in rows if r["codec"] == c.name and r["quality"] == q]
            point = {"quality": q, "images": len(sel)}
            for key in METRICS + ("bytes", "encode_s", "decode_s"):
                values = [r[key] for r in sel if not math.isnan(r[key])]  # +inf (identical images) counts
                point[key] = float(np.mean(values)) if values else math.nan
            points.append(point)
        out[c.name] = points
    return out


def bd_table(points: Mapping[str, list[dict]]) -> dict[str, dict[str, dict[str, float | None]]]:
    """{anchor: {codec: {bd_rate_psnr %, bd_rate_ms_ssim_db %, bd_psnr dB}}} for each anchor of
    :data:`ANCHORS` that was evaluated, on each curve's efficient points
    (:func:`~shared.metrics.rate_distortion.efficient_points`: with ``--safeguard`` the mean points
    may repeat or fall back); a pair with fewer than two such points or without overlapping curves
    gets None."""
    table: dict[str, dict[str, dict[str, float | None]]] = {}
    for anchor in ANCHORS:
        if anchor not in points:
            continue
        a = points[anchor]
        table[anchor] = {}
        for name, pts in points.items():
            if name == anchor:
                continue
            entry: dict[str, float | None] = {}
            for key, fn, metric in (("bd_rate_psnr", bd_rate, "psnr"), ("bd_rate_ms_ssim_db", bd_rate, "ms_ssim_db"), ("bd_psnr", bd_psnr, "psnr")):
                try:
                    entry[key] = fn(*efficient_points([p["bpp"] for p in a], [p[metric] for p in a]),
                                    *efficient_points([p["bpp"] for p in pts], [p[metric] for p in pts]))
                except UserError:
                    entry[key] = None
            table[anchor][name] = entry
    return table


def markdown_table(table: Mapping[str, Mapping[str, Mapping[str, float | None]]], codecs: Sequence[str]) -> str:
    """The BD-rate table as Markdown: one row per codec, PSNR and MS-SSIM columns per anchor."""
    if not table:
        return "(no BD-rate table: neither JPEG nor AVIF was evaluated)"
    cols = [(a, k, f"BD-rate {m} vs {a.upper()}") for a in table for k, m in (("bd_rate_psnr", "PSNR"), ("bd_rate_ms_ssim_db", "MS-SSIM"))]
    lines = ["| codec | " + " | ".join(c[2] for c in cols) + " |", "|---|" + "---:|" * len(cols)]
    for name in codecs:
        cells = []
        for anchor, key, _ in cols:
            v = table[anchor].get(name, {}).get(key) if name != anchor else 0.0
            cells.append("anchor" if name == anchor else "n/a" if v is None else f"{v:+.1f} %")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_curves(points: Mapping[str, list[dict]], out_dir: Path, title: str) -> list[Path]:
    """One PNG per measure of :data:`PLOTS`: each codec's mean points against bpp."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from shared.plotting import save_figure

    paths = []
    for metric, (fname, label) in PLOTS.items():
        fig, ax = plt.subplots(figsize=(6, 4.5))
        for name, pts in points.items():
            ax.plot([p["bpp"] for p in pts], [p[metric] for p in pts], marker="o", ms=3, label=name)
        ax.set(xlabel="bits per pixel", ylabel=label, title=title)
        ax.grid(alpha=0.3)
        ax.legend()
        paths.append(save_figure(fig, out_dir / fname))
    return paths


@dataclass
class EvalResult:
    """What :func:`evaluate` wrote: the averaged ``points``, the ``bd`` table, ``skipped`` codecs,
    the Markdown ``table`` and the ``files``."""

    points: dict[str, list[dict]]
    bd: dict
    skipped: dict[str, str]
    table: str
    files: list[Path] = field(default_factory=list)


def evaluate(options: EvalOptions, out_dir: str | Path = "rd_eval") -> EvalResult:
    """Evaluate the codecs of ``options`` (:class:`~compress.options.EvalOptions`) on its images and
    write the files of the module doc into ``out_dir``. The classical encoders get ``options.threads``
    threads (0: torch's count); torch's own count is the caller's (``compress eval`` sets it)."""
    from tqdm.auto import tqdm

    o = options
    data_dir = resolve_data_dir("kodak", o.data, option="--data")
    files = list_images(data_dir)[: o.limit or None]
    runnable, skipped = resolve_codecs(o.codecs, list(o.models) or None, o.qualities, o.threads or torch.get_num_threads(), o.refine, o.safeguard,
                                       o.perceptual_decoder)
    if not runnable:
        raise UserError("no codec can run here: " + "; ".join(f"{n}: {r}" for n, r in skipped.items()))
    lpips_weights = resolve_alexnet_weights(o.lpips_weights, o.allow_download)  # before any encoding
    lpips_model(lpips_weights)
    perceptual = PerceptualMetrics(o.inception_weights, o.allow_download, lpips_weights) if o.perceptual_metrics else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    rows: list[dict] = []
    bar = tqdm(total=len(files) * sum(len(c.qualities) for c in runnable), desc="rd eval", unit="pt", disable=not o.progress)
    for path in files:
        x = load_image(path, "RGB")
        pixels = x.shape[1] * x.shape[2]
        encoded: dict[tuple[str, float], tuple[bytes, float]] = {}  # (the files' codec, quality) → (bytes, encode seconds)
        for c in runnable:
            recs, found = [], []
            for q in c.qualities:
                bar.set_postfix_str(f"{path.name} {c.name} {q:g}")
                key = (c.bitstream or c.name, q)
                if key not in encoded:
                    t0 = time.perf_counter()
                    encoded[key] = (c.encode(x, q), time.perf_counter() - t0)
                data, encode_s = encoded[key]
                t1 = time.perf_counter()
                rec = c.decode(data)
                t2 = time.perf_counter()
                if rec.shape != x.shape:
                    raise UserError(f"codec {c.name} decoded {path.name} at quality {q:g} to shape {tuple(rec.shape)}, not {tuple(x.shape)}")
                recs.append(quantize(rec))
                found.append({"image": path.name, "codec": c.name, "quality": q, "bytes": len(data), "bpp": 8.0 * len(data) / pixels,
                              "encode_s": encode_s, "decode_s": t2 - t1})
                bar.update(1)
            scores = measure(x, torch.stack(recs), lpips_weights)
            if perceptual:
                scores |= perceptual.observe(path.name, x, c, torch.stack(recs), found)
            for i, row in enumerate(found):
                rows.append({**row, **{k: float(v[i]) for k, v in scores.items()}})
    bar.close()

    order = ["image", "codec", "quality", "bytes", "bpp", "psnr", "ms_ssim_db", "lpips", *(ROW_KEYS if perceptual else ()), "encode_s", "decode_s"]
    _write_csv(out / "per_image.csv", [{k: r[k] for k in order} for r in rows])
    (out / "per_image.json").write_text(json.dumps([{k: _finite(r[k]) for k in order} for r in rows], indent=1))
    points = average_points(rows, runnable)
    if perceptual:
        perceptual.add_to_points(points, rows)
    _write_csv(out / "points.csv", [{"codec": n, **p} for n, pts in points.items() for p in pts])
    summary = {
        "data": str(data_dir), "images": len(files),
        "codecs": {c.name: {"setting": c.setting, "points": [{k: _finite(v) for k, v in p.items()} for p in points[c.name]]} for c in runnable},
        "skipped": skipped,
    }
    (out / "points.json").write_text(json.dumps(summary, indent=2))
    bd = bd_table(points)
    (out / "bd_rate.json").write_text(json.dumps(bd, indent=2))
    table = markdown_table(bd, [c.name for c in runnable])
    (out / "bd_rate.md").write_text(table + "\n")
    plots = plot_curves(points, out, f"{Path(data_dir).name} ({len(files)} images)")
    written = [out / n for n in ("per_image.csv", "per_image.json", "points.csv", "points.json", "bd_rate.json", "bd_rate.md")] + plots
    per_image_files, per_image_table = write_per_image_bd(rows, [c.name for c in runnable], content_types(data_dir), out, Path(data_dir).name)
    if perceptual:
        perceptual_files, perceptual_table = perceptual.write(points, out, f"{Path(data_dir).name} ({len(files)} images)")
        per_image_files, per_image_table = per_image_files + perceptual_files, per_image_table + "\n\n" + perceptual_table
    if o.html:
        from .eval_page import write_eval_page

        qs = ours_qualities(o.qualities.get("ours"))
        written.append(write_eval_page(files, out, (o.models or (DEFAULT_OURS_MODEL,))[0], qs[len(qs) // 2], o.refine, lpips_weights,
                                       o.allow_download, limit=o.html, progress=o.progress))
    return EvalResult(points, bd, skipped, table + "\n\n" + per_image_table, written + per_image_files)


def run_eval(ns: argparse.Namespace) -> EvalResult:
    """Run ``compress eval`` from the flags of :func:`~compress.options.add_eval_arguments`: sets torch's
    threads (:func:`shared.threads.use_threads`), prints the BD-rate table and where the files went."""
    options = options_from_args(EvalOptions, ns)
    use_threads(options.threads)  # a codec's work is large: 0 takes every core
    result = evaluate(options, ns.out)
    for name, reason in result.skipped.items():
        print(f"skipped {name}: {reason}")
    print(result.table)
    print(f"wrote {', '.join(p.name for p in result.files)} to {ns.out}")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m compress.evaluate ...``: the same options as ``compress eval``."""
    parser = argparse.ArgumentParser(prog="compress eval", description="Rate–distortion evaluation of image codecs.")
    run_eval(add_eval_arguments(parser).parse_args(argv))
    return 0


if __name__ == "__main__":
    from shared.errors import run_cli

    raise SystemExit(run_cli(main))
