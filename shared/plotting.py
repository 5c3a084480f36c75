"""Figure helpers shared by every plot of the suite (matplotlib, Agg backend)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch


def image_grid(images: torch.Tensor, nrow: int, pad: int = 1) -> np.ndarray:
    """(N, C, H, W) in [0, 1] → (H', W') or (H', W', 3) array for ``imshow``, ``nrow`` images a row."""
    from torchvision.utils import make_grid

    grid = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=pad, pad_value=1.0)
    arr = grid.permute(1, 2, 0).numpy()
    return arr[..., 0] if images.shape[1] == 1 else arr


def save_figure(fig, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Save ``fig`` atomically (:func:`shared.config.atomic_write_bytes`) as PNG, or as JPEG
    (quality 90, for photo panels) when ``path`` ends in .jpg or .jpeg; closes the figure."""
    import io

    import matplotlib.pyplot as plt
    from PIL import Image

    from .config import atomic_write_bytes

    path = Path(path)
    buf = io.BytesIO()
    try:
        fig.tight_layout()
        fig.savefig(buf, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        png, buf = buf, io.BytesIO()
        Image.open(png).convert("RGB").save(buf, "JPEG", quality=90)
    atomic_write_bytes(path, buf.getvalue())
    return path
