#!/usr/bin/env python
"""Issue 23's per-file targets on a ``compress eval`` folder: for every file the learned codec wrote
(each image and quality of its ``per_image.csv``), its size over the size JPEG and AVIF need for the
same PSNR, and whether it stays within the targets (default: 1.2 × JPEG's, 1.5 × AVIF's).

Each anchor is encoded at every integer quality setting (JPEG 1–100, AVIF 0–100, as the eval codes
them); its size at a PSNR is interpolated (log bytes, linear in PSNR) along the smallest files that
reach each PSNR. A file whose PSNR the anchor cannot reach at any setting has no ratio (``-``) and
meets the target; one below the anchor's lowest PSNR is compared with the anchor's smallest file.
Prints one row per image (its worst file against each anchor) and a total; exits with status 1 when
any file misses a target.

    python scripts/check_content_targets.py --eval rd_content/ [--data DIR (default: the eval's)] [--codec ours] [--jpeg 1.2] [--avif 1.5]
"""
from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import numpy as np

from shared.errors import UserError, run_cli

SETTINGS = {"jpeg": range(1, 101), "avif": range(0, 101)}


def pareto(points: list[tuple[int, float]]) -> tuple[np.ndarray, np.ndarray]:
    """(bytes, PSNR) pairs → the smallest file reaching each PSNR: sizes and PSNRs, both increasing."""
    front: list[tuple[int, float]] = []
    for size, value in sorted(points):
        if not front or value > front[-1][1]:
            front.append((size, value))
    return np.array([s for s, _ in front], float), np.array([v for _, v in front])


def bytes_at(front: tuple[np.ndarray, np.ndarray], value: float) -> float:
    """The anchor's size at PSNR ``value`` on its front; NaN above its best PSNR, its smallest file below its worst."""
    sizes, values = front
    if value > values[-1]:
        return math.nan
    return float(np.exp(np.interp(value, values, np.log(sizes))))


def anchor_front(rgb, name: str) -> tuple[np.ndarray, np.ndarray]:
    from compress import classical
    from shared.metrics.image import psnr

    codec = classical.classical_codec(name)
    points = []
    for q in SETTINGS[name]:
        data = codec.encode(rgb, q)
        points.append((len(data), float(psnr(rgb[None], codec.decode(data)[None]))))
    return pareto(points)


def main(argv=None) -> int:
    from shared.data.images import load_image

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval", type=Path, required=True, help="a compress eval output folder (per_image.csv, points.json)")
    parser.add_argument("--data", type=Path, default=None, help="its images (default: the folder points.json names)")
    parser.add_argument("--codec", default="ours", help="the codec whose files are checked")
    parser.add_argument("--jpeg", type=float, default=1.2, help="the largest allowed size over JPEG's at equal PSNR")
    parser.add_argument("--avif", type=float, default=1.5, help="the largest allowed size over AVIF's at equal PSNR")
    parser.add_argument("--json", type=Path, default=None, help="also write every file's ratios here")
    ns = parser.parse_args(argv)
    if not (ns.eval / "per_image.csv").is_file():
        raise UserError(f"{ns.eval} holds no per_image.csv; give a compress eval output folder")
    data = ns.data or Path(json.loads((ns.eval / "points.json").read_text())["data"])
    rows = [r for r in csv.DictReader(open(ns.eval / "per_image.csv")) if r["codec"] == ns.codec]
    if not rows:
        raise UserError(f"{ns.eval}/per_image.csv has no rows of codec {ns.codec}")
    limits = {"jpeg": ns.jpeg, "avif": ns.avif}
    entries, misses = [], 0
    print("| image | worst × JPEG (q) | worst × AVIF (q) | files over a target |\n|---|---:|---:|---:|")
    for image in dict.fromkeys(r["image"] for r in rows):
        rgb = load_image(data / image, "RGB").mul(255).round().div(255)
        fronts = {name: anchor_front(rgb, name) for name in limits}
        worst = {name: (math.nan, None) for name in limits}
        over = 0
        for r in (r for r in rows if r["image"] == image):
            entry = {"image": image, "quality": float(r["quality"]), "bytes": int(r["bytes"]), "psnr": float(r["psnr"])}
            bad = False
            for name in limits:
                ratio = entry["bytes"] / bytes_at(fronts[name], entry["psnr"])
                entry[f"x_{name}"] = None if math.isnan(ratio) else ratio
                if not math.isnan(ratio):
                    bad |= ratio > limits[name]
                    if math.isnan(worst[name][0]) or ratio > worst[name][0]:
                        worst[name] = (ratio, entry["quality"])
            over += bad
            entries.append(entry)
        misses += over
        cells = ["-" if math.isnan(v) else f"{v:.2f} ({q:g})" for v, q in worst.values()]
        print(f"| {image} | {cells[0]} | {cells[1]} | {over} |", flush=True)
    print(f"\n{misses} of {len(entries)} files over {ns.jpeg:g} × JPEG or {ns.avif:g} × AVIF at equal PSNR")
    if ns.json:
        ns.json.write_text(json.dumps(entries, indent=1))
    return 1 if misses else 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
