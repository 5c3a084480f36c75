#!/usr/bin/env python
"""The fixed panel of 8 test horses: originals and their translations by one or more translators.

The 8 images are a seeded draw from horse2zebra's testA (seed 2026, the sorted file list), fixed
before any of the compared models was trained and never re-drawn, so the panel cannot be picked
after the fact. Each row is a model (label=FOLDER, or the shipped weights), each column a horse;
images are resized to 256² as in ``translate eval``.

    ENSO_DATA=../shared/data python scripts/translate_panel.py -o docs/horse2zebra_panel.jpg \\
        --model shipped= --model fastcut=runs/h2z_fastcut
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

import translate
from shared.data.images import load_image
from shared.plotting import image_grid, save_figure
from translate.apply import resize

PANEL_SEED = 2026
PANEL_SIZE = 8


def panel_files(test_a: Path) -> list[Path]:
    """The panel's horses: a draw of ``PANEL_SIZE`` from the sorted files of ``test_a`` (seed ``PANEL_SEED``), sorted."""
    files = sorted(p for p in test_a.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(PANEL_SEED))[:PANEL_SIZE]
    return sorted(files[i] for i in order.tolist())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", "--out", type=Path, default=Path("docs/horse2zebra_panel.jpg"))
    p.add_argument("--data", type=Path, default=None, help="horse2zebra folder (default: $ENSO_DATA/horse2zebra)")
    p.add_argument("--model", action="append", default=None, metavar="LABEL=FOLDER",
                   help="a translator to show (repeatable); an empty FOLDER is the shipped weights (default: shipped=)")
    p.add_argument("--size", type=int, default=256)
    args = p.parse_args()
    data = args.data or Path(os.environ.get("ENSO_DATA", "data")) / "horse2zebra"
    files = panel_files(data / "testA")
    originals = torch.stack([resize(load_image(f, mode="RGB"), (args.size, args.size)) for f in files])
    rows, labels = [originals], ["horse (test)"]
    for spec in args.model or ["shipped="]:
        label, _, folder = spec.partition("=")
        model = translate.load(folder or None)
        rows.append(torch.stack([model.apply_tensor(img) for img in originals]))
        labels.append(label)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 1, figsize=(2 * PANEL_SIZE, 2.1 * len(rows)))
    for ax, row, label in zip(axes, rows, labels):
        ax.imshow(image_grid(row, nrow=PANEL_SIZE, pad=2))
        ax.set_ylabel(label, fontsize=11)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].set_title(", ".join(f.stem for f in files), fontsize=8)
    print(f"wrote {save_figure(fig, args.out)}")


if __name__ == "__main__":
    main()
