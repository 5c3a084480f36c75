"""Perceptual measures for ``compress eval --perceptual-metrics``: KID on patches, the
high-frequency measure, a paired bootstrap between two decoders of the same files, BD-rate at equal
LPIPS, and a figure of crops at the lowest rate.

:class:`PerceptualMetrics` watches the eval loop (:meth:`~PerceptualMetrics.observe`, once per
image and codec, with the reconstructions (P, 3, H, W) in [0, 1] of all its quality points) and
then adds to each averaged point and writes (:meth:`~PerceptualMetrics.write`):

* ``kid``, ``kid_std``: KID (:func:`shared.metrics.distribution.kid`, ×1 units) between the
  Inception features of the reconstructions' and the originals' 256² patches, the mean and the
  std over :data:`KID_SUBSETS` random subsets of :data:`KID_SUBSET_SIZE` patches (at most half the
  patches: with subsets as large as the set every draw is the whole set and the std is 0). The
  patches (:func:`patch_grid`, HiFiC's protocol) are the non-overlapping grid from the top-left
  corner plus the same grid shifted by 128 pixels in both directions: 6 + 2 = 8 of a 768×512
  Kodak image, 192 for the 24. The std is the spread of subset estimates; to compare two
  decoders use the paired interval below;
* ``hf_db``: :func:`shared.metrics.spectrum.high_frequency_db` of each whole reconstruction
  against its original (0.25–0.5 cycles/pixel; 0 dB: the original's fine detail, below: blur,
  above: added noise), averaged over images (also in ``per_image.csv``);
* ``ms_ssim``: MS-SSIM (not in dB), averaged over images; ``patches``: how many patches KID saw.

Beside ``points.json`` (which then holds these per point) it writes ``perceptual.json`` (the
protocol, ``kid_bootstrap``, ``bd_rate_lpips``), ``perceptual.md``, ``rd_kid.png``, ``rd_hf_db.png``
and, when ``ours`` ran, ``crops_lowest_rate.png``:

* ``kid_bootstrap``: for each codec that decodes another's files (``ours-perceptual`` decodes
  ``ours``'s), at each quality, KID(perceptual) − KID(mse) with a paired bootstrap 95 % interval
  over the patches (:func:`shared.metrics.kid_bootstrap.paired_kid_difference`, 1,000 resamples);
* ``bd_rate_lpips``: {anchor: {codec: BD-rate %}} at equal LPIPS against each classical codec that
  ran. BD-rate needs a higher-is-better quality, so it is given −LPIPS: log-rate is interpolated
  against −LPIPS and averaged uniformly over the LPIPS range both curves cover; negative means
  fewer bits than the anchor for the same LPIPS (None where the curves do not overlap);
* ``crops_lowest_rate.png``: a 256² centre crop of the first image: original | ours (MSE decoder) |
  the perceptual decoder | AVIF | JPEG, the classical files the largest that fit ours's file at its
  lowest quality (:func:`compress.demo.jpeg_at_size`), titled with bpp, PSNR and LPIPS of the whole image.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from shared.errors import UserError
from shared.metrics.distribution import inception_features, kid, resolve_inception_weights
from shared.metrics.image import psnr
from shared.metrics.kid_bootstrap import paired_kid_difference
from shared.metrics.perceptual import lpips_distance
from shared.metrics.rate_distortion import bd_rate, efficient_points
from shared.metrics.spectrum import HIGH_BAND, high_frequency_db

from . import classical

PATCH = 256
KID_SUBSETS = 100
KID_SUBSET_SIZE = 100
BOOTSTRAP_RESAMPLES = 1000
LEVEL = 0.95
#: measures this module adds to each averaged point
POINT_KEYS = ("ms_ssim", "hf_db", "kid", "kid_std", "patches")
#: and to each per-image row
ROW_KEYS = ("hf_db",)


def patch_grid(img: torch.Tensor, size: int = PATCH) -> torch.Tensor:
    """(C, H, W) → (P, C, size, size): the non-overlapping grid of ``size``² patches from the top-left
    corner, then the grid offset by ``size // 2`` in both directions (8 patches of a 768×512 image
    at 256; none for an image smaller than ``size`` on a side)."""
    C, H, W = img.shape
    crops = [img[:, top:top + size, left:left + size]
             for off in (0, size // 2) for top in range(off, H - size + 1, size) for left in range(off, W - size + 1, size)]
    return torch.stack(crops) if crops else img.new_zeros((0, C, size, size))


def bd_rate_lpips(points: Mapping[str, Sequence[Mapping]], anchors: Sequence[str]) -> dict[str, dict[str, float | None]]:
    """{anchor: {codec: BD-rate % at equal LPIPS}} of every other codec against each of ``anchors``
    present in ``points`` ({codec: [{bpp, lpips}, ...]}); −LPIPS is the quality (module doc), on each
    curve's efficient points (a ``--safeguard`` curve can repeat a file)."""
    table: dict[str, dict[str, float | None]] = {}
    for anchor in (a for a in anchors if a in points):
        a = points[anchor]
        table[anchor] = {}
        for name, pts in points.items():
            if name == anchor:
                continue
            try:
                table[anchor][name] = bd_rate(*efficient_points([p["bpp"] for p in a], [-p["lpips"] for p in a]),
                                              *efficient_points([p["bpp"] for p in pts], [-p["lpips"] for p in pts]))
            except UserError:
                table[anchor][name] = None
    return table


def _mean(values) -> float:
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


class PerceptualMetrics:
    """Collects patch features, high-frequency measures and the first image's lowest-rate
    reconstructions during ``compress eval`` (module doc). ``inception_weights``: see
    :func:`shared.metrics.distribution.resolve_inception_weights` (resolved here, before any work);
    ``lpips_weights``: the AlexNet file the eval resolved, for the figure's titles."""

    def __init__(self, inception_weights=None, allow_download: bool | None = None, lpips_weights=None):
        self.inception = resolve_inception_weights(inception_weights, allow_download)
        self.lpips_weights = lpips_weights
        self.images: list[str] = []
        self.ref: list[np.ndarray] = []  # the originals' patch features, one array per image
        self.feats: dict[tuple[str, float], list[np.ndarray]] = {}  # (codec, quality) → one array per image
        self.first: dict[str, tuple[torch.Tensor, int]] = {}  # codec → (lowest-rate reconstruction, bytes) of the first image
        self.bitstreams: dict[str, str] = {}  # codec → the codec whose files it decodes

    def _features(self, patches: torch.Tensor) -> np.ndarray:
        return inception_features([patches], self.inception) if len(patches) else np.zeros((0, 2048))

    def observe(self, image: str, x: torch.Tensor, codec, recs: torch.Tensor, found: Sequence[Mapping]) -> dict[str, torch.Tensor]:
        """Image ``x`` (3, H, W) and ``codec``'s reconstructions ``recs`` (P, 3, H, W) at the P rows
        ``found`` (quality, bytes; lowest rate first), all in [0, 1] → {``hf_db``: (P,)}, for the
        per-image rows."""
        if image not in self.images:
            self.images.append(image)
            self.ref.append(self._features(patch_grid(x)))
            if len(self.images) == 1:
                self.x = x
        if image == self.images[0]:
            self.first[codec.name] = (recs[0], int(found[0]["bytes"]))
        if getattr(codec, "bitstream", None):
            self.bitstreams[codec.name] = codec.bitstream
        for row, rec in zip(found, recs):
            self.feats.setdefault((codec.name, row["quality"]), []).append(self._features(patch_grid(rec)))
        return {"hf_db": high_frequency_db(recs, x.unsqueeze(0).expand_as(recs), per_image=True)}

    def _set(self, codec: str, quality: float) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate(self.ref), np.concatenate(self.feats[(codec, quality)])

    def add_to_points(self, points: Mapping[str, list[dict]], rows: Sequence[Mapping]) -> None:
        """Add :data:`POINT_KEYS` to each averaged point of ``points`` ({codec: [point]}, in place),
        from the eval's per-image ``rows`` (``ms_ssim_db``, ``hf_db``) and the patch features."""
        for name, pts in points.items():
            for p in pts:
                sel = [r for r in rows if r["codec"] == name and r["quality"] == p["quality"]]
                p["ms_ssim"] = _mean([1 - 10 ** (-r["ms_ssim_db"] / 10) for r in sel])  # +inf dB: identical, 1
                p["hf_db"] = _mean([r["hf_db"] for r in sel])
                ref, rec = self._set(name, p["quality"])
                p["patches"] = len(rec)
                if len(rec) < 4:  # two subsets of two patches at the least
                    p["kid"] = p["kid_std"] = math.nan
                    continue
                p["kid"], p["kid_std"] = kid(ref, rec, KID_SUBSETS, min(KID_SUBSET_SIZE, len(rec) // 2))

    def bootstrap(self, points: Mapping[str, list[dict]]) -> list[dict]:
        """For each codec decoding another's files, at each quality both have: KID(it) − KID(the
        other) with its paired bootstrap interval (:data:`BOOTSTRAP_RESAMPLES`, :data:`LEVEL`)."""
        out = []
        for name, source in self.bitstreams.items():
            if source not in points:
                continue
            for q in [p["quality"] for p in points[name] if any(s["quality"] == p["quality"] for s in points[source])]:
                ref, a = self._set(name, q)
                _, b = self._set(source, q)
                if len(ref) < 2:
                    continue
                d = paired_kid_difference(ref, a, b, BOOTSTRAP_RESAMPLES, LEVEL)
                out.append({"codec": name, "against": source, "quality": q, **d.as_dict()})
        return out

    def write(self, points: Mapping[str, list[dict]], out: Path, title: str) -> tuple[list[Path], str]:
        """Write ``perceptual.json``, ``perceptual.md``, the plots and the crops figure into ``out``
        (after :meth:`add_to_points`); returns (the files, the Markdown)."""
        boot = self.bootstrap(points)
        bd = bd_rate_lpips(points, [n for n in classical.NAMES if n in points])
        protocol = {"patch": PATCH, "patches_per_set": len(np.concatenate(self.ref)) if self.ref else 0, "kid_subsets": KID_SUBSETS,
                    "kid_subset_size": KID_SUBSET_SIZE, "bootstrap_resamples": BOOTSTRAP_RESAMPLES, "level": LEVEL,
                    "hf_band_cycles_per_pixel": list(HIGH_BAND), "bd_rate_lpips_quality": "-lpips"}
        text = markdown(points, boot, bd)
        (out / "perceptual.json").write_text(json.dumps({"protocol": protocol, "kid_bootstrap": boot, "bd_rate_lpips": bd}, indent=2))
        (out / "perceptual.md").write_text(text + "\n")
        files = [out / "perceptual.json", out / "perceptual.md", *plot_perceptual(points, out, title)]
        figure = self.crops_figure(out / "crops_lowest_rate.png")
        return files + ([figure] if figure else []), text

    def crops_figure(self, path: Path) -> Path | None:
        """original | ours | its perceptual decoder(s) | AVIF | JPEG (module doc), or None without ``ours``."""
        mse = next((n for n in self.first if n.startswith("ours") and n not in self.bitstreams), None)
        if mse is None:
            return None
        from .demo import jpeg_at_size

        x, size = self.x, self.first[mse][1]
        panels = [("original", x, None), (f"{mse} (MSE decoder)", self.first[mse][0], size)]
        panels += [(f"{n} (perceptual decoder)", self.first[n][0], self.first[n][1]) for n, s in self.bitstreams.items() if s == mse and n in self.first]
        for name in ("avif", "jpeg"):
            if classical.unavailable_reason(name) is None:
                data, q = jpeg_at_size(x, size, name)
                fits = "same size or less" if len(data) <= size else "its smallest file, larger"
                panels.append((f"{name.upper()} q={q} ({fits})", classical.classical_codec(name).decode(data), len(data)))
        recs = torch.stack([p[1] for p in panels[1:]])
        scores = psnr(x[None].expand_as(recs), recs), lpips_distance(x[None].expand_as(recs), recs, self.lpips_weights)
        _, H, W = x.shape
        top, left = max(0, (H - PATCH) // 2), max(0, (W - PATCH) // 2)

        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from shared.plotting import save_figure

        fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.8))
        for i, (ax, (label, img, nbytes)) in enumerate(zip(axes, panels)):
            ax.imshow(img[:, top:top + PATCH, left:left + PATCH].permute(1, 2, 0).clamp(0, 1).numpy())
            numbers = "" if nbytes is None else f"\n{8 * nbytes / (H * W):.3f} bpp · {float(scores[0][i - 1]):.2f} dB · LPIPS {float(scores[1][i - 1]):.3f}"
            ax.set_title(label + numbers, fontsize=8)
            ax.axis("off")
        fig.suptitle(f"{self.images[0]}: {PATCH}² centre crop at ours's lowest rate", fontsize=9)
        return save_figure(fig, path)


def markdown(points: Mapping[str, list[dict]], boot: Sequence[Mapping], bd: Mapping[str, Mapping[str, float | None]]) -> str:
    """The points' perceptual measures, the paired KID intervals and BD-rate at equal LPIPS, as Markdown."""
    lines = ["| codec | quality | bpp | PSNR | MS-SSIM | LPIPS | KID ×100 (± std) | HF dB |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, pts in points.items():
        for p in pts:
            k = "n/a" if math.isnan(p["kid"]) else f"{100 * p['kid']:.3f} ± {100 * p['kid_std']:.3f}"
            lines.append(f"| {name} | {p['quality']:g} | {p['bpp']:.4f} | {p['psnr']:.2f} | {p['ms_ssim']:.4f} | {p['lpips']:.4f} | {k} | {p['hf_db']:+.2f} |")
    if boot:
        lines += ["", f"KID difference ×100 with a paired bootstrap {100 * LEVEL:g} % interval over the patches:", "",
                  "| codec | against | quality | difference | interval | excludes 0 |", "|---|---|---:|---:|---:|---|"]
        lines += [f"| {b['codec']} | {b['against']} | {b['quality']:g} | {100 * b['difference']:+.3f} | [{100 * b['low']:+.3f}, {100 * b['high']:+.3f}] | "
                  f"{'yes' if b['excludes_zero'] else 'no'} |" for b in boot]
    if bd:
        codecs = list(points)
        lines += ["", "BD-rate at equal LPIPS (−LPIPS as the quality; negative: fewer bits):", "",
                  "| codec | " + " | ".join(f"vs {a.upper()}" for a in bd) + " |", "|---|" + "---:|" * len(bd)]
        for name in codecs:
            cells = ["anchor" if name == a else "n/a" if bd[a].get(name) is None else f"{bd[a][name]:+.1f} %" for a in bd]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_perceptual(points: Mapping[str, list[dict]], out: Path, title: str) -> list[Path]:
    """``rd_kid.png`` (KID ± its subset std against bpp) and ``rd_hf_db.png`` (0 dB: the originals)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from shared.plotting import save_figure

    paths = []
    plots = (("kid", "rd_kid.png", "KID on 256² patches (lower is better)"), ("hf_db", "rd_hf_db.png", "high-frequency power vs original (dB)"))
    for key, fname, label in plots:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        for name, pts in points.items():
            bpp, ys = [p["bpp"] for p in pts], [p[key] for p in pts]
            if key == "kid":
                ax.errorbar(bpp, ys, yerr=[p["kid_std"] for p in pts], marker="o", ms=3, capsize=2, label=name)
            else:
                ax.plot(bpp, ys, marker="o", ms=3, label=name)
        if key == "hf_db":
            ax.axhline(0, color="k", lw=0.8)
        ax.set(xlabel="bits per pixel", ylabel=label, title=title)
        ax.grid(alpha=0.3)
        ax.legend()
        paths.append(save_figure(fig, out / fname))
    return paths
