"""Denoising: a denoising autoencoder trained on grey BSDS500 crops, measured on BSD68 at σ = 25.

Training data: random grey ``crop``×``crop`` patches (and flips) of BSDS500 ``train/`` and
``test/`` (400 photographs). ``val/`` is left out on purpose: BSD68 is made of 68 of its images.
The model (``denoising_ae``, a small residual U-Net) sees fresh noise of its ``corruption`` every
step: Gaussian of ``sigma`` unless told otherwise.

Evaluation follows the standard benchmark (DnCNN, BM3D papers): each full BSD68 image in [0, 1]
gets ``sigma/255 · N(0, 1)`` noise from one generator seeded with ``noise_seed``, **not clipped**
to [0, 1]; the denoised output is clamped to [0, 1]; PSNR (peak 1) is averaged over the images.
Numbers: mean PSNR of the DAE (also with its output rounded to 8 bits, as the published code
does), of the noisy input, of two classical filters computed here (a Gaussian blur of std 1
pixel, and scipy's adaptive Wiener filter 5×5 given the true noise variance), the published
BM3D / DnCNN-S values for the same protocol, and the training steps and wall time.
Figure: a crop of one BSD68 image, clean / noisy / Wiener / DAE, with PSNRs.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.images import ImageFolder, list_images, load_image
from ..errors import UserError
from ..metrics.image import psnr
from ..models.denoising import DenoisingAEConfig, gaussian_noise
from ..paths import data_dir
from .base import Use, load_run, register_use, run_summary, train_model

#: Published BSD68 PSNRs at σ = 25 (Zhang et al., "Beyond a Gaussian Denoiser", IEEE TIP 2017, Table II).
PUBLISHED_PSNR = {"BM3D": 28.57, "DnCNN-S": 29.23}
GAUSSIAN_BLUR_STD = 1.0
WIENER_SIZE = 5


@dataclass
class DenoisingConfig:
    train_data: tuple[str, ...] = field(default=(), metadata={"help": "folders of clean training photos (default: $ENSO_DATA/train_photos/bsds500/train and test)"})
    test_data: str | None = field(default=None, metadata={"help": "folder of clean grey test images (default: $ENSO_DATA/bsd68)"})
    crop: int = field(default=64, metadata={"help": "training patch size in pixels"})
    #: the DAE; its sigma is also the test noise's (channels: 1, the images are grey)
    model: DenoisingAEConfig = field(default_factory=DenoisingAEConfig, metadata={"derived": ("channels",), "helps": {
        "sigma": "gaussian noise std on the 0..255 scale, for training and test",
        "widths": "U-Net channels per level",
        "blocks": "residual blocks per U-Net level",
    }})
    noise_seed: int = field(default=0, metadata={"help": "seed of the test noise"})
    limit: int = field(default=0, metadata={"help": "evaluate on the first N test images only (0: all)"})
    figure_image: int = field(default=0, metadata={"help": "index of the test image shown in the figure"})


def train_folders(cfg: DenoisingConfig) -> list[Path]:
    """The training folders: the given ones, or BSDS500 train/ and test/ under $ENSO_DATA."""
    if cfg.train_data:
        return [data_dir("train_photos", given) for given in cfg.train_data]
    root = data_dir("train_photos") / "bsds500"
    return [data_dir("train_photos", root / split) for split in ("train", "test")]


def load_test_images(cfg: DenoisingConfig) -> list[tuple[str, torch.Tensor]]:
    """``[(file name, clean (1, 1, H, W) in [0, 1])]`` of the test folder, the first ``limit`` if set."""
    files = list_images(data_dir("bsd68", cfg.test_data))
    if cfg.limit < 0:
        raise UserError(f"limit must be 0 (all) or a positive count, not {cfg.limit}")
    files = files[: cfg.limit] if cfg.limit else files
    return [(f.name, load_image(f, "L")[None]) for f in files]


def noisy_versions(clean: list[torch.Tensor], sigma: float, seed: int) -> list[torch.Tensor]:
    """Unclipped noisy copies of ``clean``, drawn in order from one generator seeded with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return [gaussian_noise(x, sigma, g) for x in clean]


def gaussian_blur(noisy: torch.Tensor) -> torch.Tensor:
    """Classical baseline: Gaussian blur of std ``GAUSSIAN_BLUR_STD`` pixels (kornia, reflect border), clamped."""
    import kornia

    return kornia.filters.gaussian_blur2d(noisy, (7, 7), (GAUSSIAN_BLUR_STD,) * 2, border_type="reflect").clamp(0, 1)


def wiener(noisy: torch.Tensor, sigma: float) -> torch.Tensor:
    """Classical baseline: scipy's adaptive Wiener filter (``WIENER_SIZE``², known noise variance), clamped."""
    from scipy.signal import wiener as scipy_wiener

    out = [scipy_wiener(img.double().numpy(), WIENER_SIZE, (sigma / 255.0) ** 2) for img in noisy.flatten(0, 1)]
    return torch.tensor(np.stack(out), dtype=torch.float32).view_as(noisy).clamp(0, 1)


@register_use
class Denoising(Use):
    name = "denoising"
    summary = "denoising autoencoder on grey BSDS500 crops; BSD68 PSNR at sigma 25 vs filters, BM3D, DnCNN"
    config_cls = DenoisingConfig
    default_train = {"steps": 400, "batch_size": 16, "lr": 1e-3, "lr_schedule": "cosine", "decay_start": 0.5, "log_every": 20, "ckpt_every": 200}

    eval_on_device = True

    def run_dir(self, run: Path) -> Path:
        return Path(run) / "runs" / "dae"

    def train(self, cfg: DenoisingConfig, train, run: Path, resume: bool = False) -> None:
        data = ImageFolder(train_folders(cfg), cfg.crop, mode="L")
        model_cfg = dataclasses.replace(cfg.model, channels=1)
        train_model("denoising_ae", model_cfg, data, train, self.run_dir(run), resume, {"train_images": len(data)})

    def _denoised(self, cfg: DenoisingConfig, run: Path, device: str | torch.device):
        """The DAE (on ``device``), the test images, and their clean and noisy versions (on the CPU)."""
        model = load_run(self.run_dir(run)).to(device)
        images = load_test_images(cfg)
        clean = [x for _, x in images]
        noisy = noisy_versions(clean, cfg.model.sigma, cfg.noise_seed)
        return model, images, clean, noisy

    @staticmethod
    def _denoise(model, y: torch.Tensor) -> torch.Tensor:
        return model.denoise(y.to(next(model.parameters()).device)).float().cpu()

    def evaluate(self, cfg: DenoisingConfig, run: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
        """The numbers of the module doc; the DAE computes on ``device``, the filters on the CPU."""
        model, images, clean, noisy = self._denoised(cfg, run, device)
        sigma = cfg.model.sigma
        scores: dict[str, list[float]] = {"dae": [], "dae_8bit": [], "noisy_input": [], "gaussian_blur": [], "wiener": []}
        t0 = time.perf_counter()
        for x, y in zip(clean, noisy):
            x_hat = self._denoise(model, y)
            scores["dae"].append(float(psnr(x_hat, x)))
            scores["dae_8bit"].append(float(psnr(x_hat.mul(255).round().div(255), x)))
            scores["noisy_input"].append(float(psnr(y, x)))
            scores["gaussian_blur"].append(float(psnr(gaussian_blur(y), x)))
            scores["wiener"].append(float(psnr(wiener(y, sigma), x)))
        mean = {k: sum(v) / len(v) for k, v in scores.items()}
        training = run_summary(self.run_dir(run)) | {"crop": cfg.crop}
        return {
            "test_images": len(images),
            "protocol": f"grey images in [0,1] + N(0, ({sigma:g}/255)^2) noise, seed {cfg.noise_seed}, noisy input NOT clipped (standard); outputs clamped to [0,1]; PSNR peak 1, averaged over images",
            "mean_psnr_db": {
                "dae": mean["dae"],
                "dae_output_rounded_to_8bit": mean["dae_8bit"],
                "noisy_input": mean["noisy_input"],
                f"gaussian_blur_std{GAUSSIAN_BLUR_STD:g}": mean["gaussian_blur"],
                f"wiener_{WIENER_SIZE}x{WIENER_SIZE}": mean["wiener"],
            },
            "dae_minus_bm3d_db": mean["dae"] - PUBLISHED_PSNR["BM3D"] if sigma == 25 else None,
            "published_psnr_db_bsd68_sigma25": {**PUBLISHED_PSNR, "source": "Zhang et al. 2017 (DnCNN), Table II; published values, not measured here"},
            "training": training,
            "eval_wall_time_s": time.perf_counter() - t0,
            "per_image_dae_psnr_db": {name: s for (name, _), s in zip(images, scores["dae"])},
        }

    def plot(self, cfg: DenoisingConfig, run: Path, device: str | torch.device = "cpu") -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from ..plotting import save_figure

        model, images, clean, noisy = self._denoised(cfg, run, device)
        if not 0 <= cfg.figure_image < len(images):
            raise UserError(f"figure_image {cfg.figure_image} is out of range; the test set has {len(images)} images")
        i = cfg.figure_image
        x, y = clean[i], noisy[i]
        h, w = x.shape[-2:]
        s = min(160, h, w)
        top, left = (h - s) // 2, (w - s) // 2
        sigma = cfg.model.sigma
        results = [("noisy (unclipped)", y), (f"Wiener {WIENER_SIZE}x{WIENER_SIZE}", wiener(y, sigma)), ("denoising AE", self._denoise(model, y))]
        panels = [(f"clean {images[i][0]}\n{s}x{s} centre crop, sigma {sigma:g}", x)]
        panels += [(f"{title}\n{float(psnr(img, x)):.2f} dB (whole image)", img) for title, img in results]
        fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6))
        for ax, (title, img) in zip(axes, panels):
            ax.imshow(img[0, 0, top : top + s, left : left + s].clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        return save_figure(fig, self.figure_path(run))
