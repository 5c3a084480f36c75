"""A small random data set that fits each registered model's default config."""
from __future__ import annotations

import torch

from shared.data import TensorItems


def example_batch(model, n: int) -> TensorItems:
    """``n`` random examples shaped for ``model`` (images in [0, 1], labels, or series windows)."""
    cfg = model.config
    g = torch.Generator().manual_seed(0)
    if hasattr(cfg, "window"):  # sequence models: (T, F) windows
        return TensorItems(torch.randn(n, cfg.window, cfg.features, generator=g))
    if hasattr(cfg, "input_shape"):
        x = torch.rand(n, *cfg.input_shape, generator=g)
    else:
        x = torch.rand(n, getattr(cfg, "channels", 3), 64, 64, generator=g)  # 64: the codecs downsample by 64
    from translate.models.translator import Translator

    if isinstance(model, Translator):  # unpaired translation: (a, b) image pairs
        return TensorItems(x, torch.rand(n, 3, 64, 64, generator=g))
    if hasattr(cfg, "num_classes"):
        return TensorItems(x, torch.randint(0, cfg.num_classes, (n,), generator=g))
    return TensorItems(x)
