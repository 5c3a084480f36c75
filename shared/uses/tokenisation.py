"""Tokenisation: a VQ-VAE turns each image into a small map of discrete codes.

Data: scikit-learn's 8×8 digits (bundled, no download) upsampled bilinearly to
``image_size × image_size``. The VQ-VAE halves the resolution once per entry of ``widths`` and
quantises each position of the latent map to one of ``codebook_size`` codes.

Numbers (test set): reconstruction PSNR, codebook perplexity and usage, and the bits of an index
map (``h·w·log2 K``) beside the raw bits of the image the model sees (8 bits per pixel), the
information in the original 8×8 digit (17 grey levels a pixel), and the bits the index map would
need under the test set's code frequencies (``h·w·log2 perplexity``).
Figure: originals above reconstructions, the index maps in colour (one colour per code, the same
across images), and how often each code occurs on the test set.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..data import TensorItems
from ..data.digits import load_digits
from ..errors import UserError
from ..metrics.codebook import code_counts, perplexity, usage
from ..metrics.image import psnr
from ..models.vqvae import VQVAEConfig
from .base import Use, load_run, register_use, train_model


@dataclass
class TokenisationConfig:
    image_size: int = field(default=32, metadata={"help": "digits are upsampled from 8x8 to this size"})
    model: VQVAEConfig = field(
        default_factory=lambda: VQVAEConfig(widths=(16, 32, 64), res_blocks=0, codebook_size=128),
        metadata={"derived": ("input_shape",), "helps": {
            "widths": "conv channels per downsampling (the map is image_size / 2**len(widths) wide)",
            "code_dim": "length of a code vector",
        }},
    )
    show: int = field(default=8, metadata={"help": "test images in the figure"})


def upsampled_digits(split: str, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Digits ``(x, y)`` with x (N, 1, size, size) in [0, 1], bilinearly upsampled from 8×8."""
    if size < 8:
        raise UserError(f"image size {size} is smaller than the 8x8 digits; use 8 or more")
    x, y = load_digits(split, seed)
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1), y


def model_config(cfg: TokenisationConfig) -> VQVAEConfig:
    """The VQ-VAE's config: ``cfg.model`` on grey ``image_size``² images."""
    return dataclasses.replace(cfg.model, input_shape=(1, cfg.image_size, cfg.image_size))


@register_use
class Tokenisation(Use):
    name = "tokenisation"
    summary = "VQ-VAE on upsampled digits: index maps, codebook usage, bits per image"
    config_cls = TokenisationConfig
    default_train = {"steps": 1000, "batch_size": 64, "lr": 2e-3, "lr_schedule": "cosine", "decay_start": 0.5}

    def train(self, cfg: TokenisationConfig, train, run: Path, resume: bool = False) -> None:
        x, _ = upsampled_digits("train", cfg.image_size)
        extra = {"data": f"sklearn digits upsampled to {cfg.image_size}x{cfg.image_size}"}
        train_model("vqvae", model_config(cfg), TensorItems(x), train, Path(run) / "runs" / "vqvae", resume, extra)

    def _test_outputs(self, cfg: TokenisationConfig, run: Path):
        model = load_run(Path(run) / "runs" / "vqvae")
        x, _ = upsampled_digits("test", cfg.image_size)
        with torch.no_grad():
            result = model(x)
        return model, x, result

    def evaluate(self, cfg: TokenisationConfig, run: Path) -> dict[str, Any]:
        model, x, result = self._test_outputs(cfg, run)
        k = model.config.codebook_size
        h, w = model.latent_shape
        ppl = float(perplexity(result["indices"], k))
        index_bits = h * w * math.log2(k)
        raw_bits = x[0].numel() * 8
        return {
            "test_images": len(x),
            "image_shape": list(x.shape[1:]),
            "index_map_shape": [h, w],
            "codebook_size": k,
            "psnr_db": float(psnr(result["x_hat"], x).mean()),
            "codebook_perplexity": ppl,
            "codebook_usage": float(usage(result["indices"], k)),
            "bits_per_image_index_map": index_bits,
            "bits_per_image_raw_8bit": raw_bits,
            "compression_ratio_vs_raw": raw_bits / index_bits,
            "bits_per_image_source_8x8_17_levels": 64 * math.log2(17),
            "bits_per_image_at_code_entropy": h * w * math.log2(ppl),
        }

    def plot(self, cfg: TokenisationConfig, run: Path) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from ..plotting import image_grid, save_figure

        model, x, result = self._test_outputs(cfg, run)
        k = model.config.codebook_size
        n = max(1, min(cfg.show, len(x)))
        fig = plt.figure(figsize=(max(8.0, 1.4 * n), 7.5))
        grid = fig.add_gridspec(3, n, height_ratios=[1.9, 1.0, 1.5])
        ax = fig.add_subplot(grid[0, :])
        ax.imshow(image_grid(torch.cat([x[:n], result["x_hat"][:n]]), nrow=n, pad=2), cmap="gray", vmin=0, vmax=1)
        psnr_db = psnr(result["x_hat"], x).mean()
        ax.set_title(f"test digits (top) and VQ-VAE reconstructions (bottom), PSNR {psnr_db:.1f} dB")
        ax.axis("off")
        cmap = plt.get_cmap("nipy_spectral", k)
        for i in range(n):
            ax = fig.add_subplot(grid[1, i])
            idx = result["indices"][i]
            ax.imshow(idx, cmap=cmap, vmin=-0.5, vmax=k - 0.5, interpolation="nearest")
            if idx.numel() <= 64:
                for (r, c), v in zip(torch.cartesian_prod(torch.arange(idx.shape[0]), torch.arange(idx.shape[1])).tolist(), idx.flatten().tolist()):
                    red, green, blue, _ = cmap(v)
                    ink = "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "white"
                    ax.text(c, r, str(v), ha="center", va="center", fontsize=6, color=ink)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                h, w = idx.shape
                ax.set_ylabel(f"codes {h}×{w}", fontsize=8)
        ax = fig.add_subplot(grid[2, :])
        counts = code_counts(result["indices"], k).float()
        order = counts.argsort(descending=True)
        ax.bar(range(k), counts[order] / counts.sum(), color=cmap(order.numpy()), width=1.0)
        ax.set_xlim(-0.5, k - 0.5)
        ax.set_xlabel("codes, most used first (bar colour = the code's colour in the maps above)")
        ax.set_ylabel("share of test positions")
        ppl, used = perplexity(result["indices"], k), usage(result["indices"], k)
        ax.set_title(f"code usage on the test set: perplexity {ppl:.1f} of K={k}, {used:.0%} of codes used")
        return save_figure(fig, self.figure_path(run))
