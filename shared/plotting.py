"""Figure helpers shared by every plot of the suite (matplotlib, Agg backend)."""
from __future__ import annotations

import os
import tempfile
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
    """Save ``fig`` as PNG through a temporary file and a rename; closes the figure."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
