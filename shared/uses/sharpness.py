"""Sharpness: one convolutional VAE trained three ways, to show what perceptual and adversarial losses buy.

The model is ``perceptual_vae`` (:mod:`shared.models.vae`): the same encoder, decoder, latent size
and KL weight β for every variant; only the reconstruction term of
:class:`~shared.losses.perceptual_adversarial.PerceptualAdversarialLoss` changes:

* ``mse``: ``pixel_weight`` · MSE (+ β · KL), the plain VAE, whose reconstructions are blurry;
* ``lpips``: the same + ``lpips_weight`` · LPIPS (AlexNet);
* ``lpips_gan``: the same + an adversarial term with taming's adaptive weight (``gan_weight``), whose
  discriminator (by default small heads on LPIPS's frozen AlexNet,
  :class:`~shared.losses.feature_discriminator.FeatureDiscriminator`) starts after ``disc_start`` of the steps.

Training data: random ``crop``² crops (and flips) of BSDS500 ``train/`` and ``val/`` (300 photos).
Evaluation: ``eval_crops`` fixed crops of BSDS500 ``test/`` (200 photos held out from training;
crop k comes from photo k mod 200 at a position drawn from seed ``eval_seed``·10⁶ + k), encoded
to the posterior mean and decoded. Numbers per variant: mean PSNR, mean LPIPS, reconstruction FID
and KID (pytorch-fid's Inception, reconstructions against the originals), the high-frequency
measure (:func:`shared.metrics.spectrum.high_frequency_db`, 0.25–0.5 cycles/pixel, 0 dB = as much
fine detail as the originals), the mean KL (nats per crop), and the changes against ``mse``.
Figure: originals and the three reconstructions side by side, and samples from each prior.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..data.images import ImageFolder
from ..errors import ConfigError
from ..metrics import distribution
from ..metrics.image import psnr
from ..metrics.perceptual import lpips_distance, lpips_model
from ..metrics.spectrum import HIGH_BAND, high_frequency_db
from ..models.vae import PerceptualVAEConfig, kl_per_example
from ..paths import data_dir
from .base import Use, load_run, register_use, run_summary, train_model

VARIANTS = ("mse", "lpips", "lpips_gan")
#: FID's covariances are full rank from this many images on (Inception's pool3 size)
FID_FULL_RANK = distribution.FEATURE_DIM


@dataclass
class SharpnessConfig:
    train_data: tuple[str, ...] = field(default=(), metadata={"help": "folders of training photos (default: $ENSO_DATA/train_photos/bsds500/train and val)"})
    test_data: str | None = field(default=None, metadata={"help": "folder of test photos (default: $ENSO_DATA/train_photos/bsds500/test)"})
    crop: int = field(default=64, metadata={"help": "crop size in pixels, training and test (divisible by 2^len(widths))"})
    #: the one VAE and loss of all three variants; each variant switches off the terms it does without
    model: PerceptualVAEConfig = field(
        default_factory=lambda: PerceptualVAEConfig(
            beta=2e-5, pixel_weight=10.0, gan_weight=0.5, disc_features="alexnet", disc_width=32, disc_layers=2,
            disc_spectral_norm=False, disc_lr_ratio=4.0),
        metadata={"derived": ("input_shape", "disc_start"), "helps": {
            "latent_dim": "latent size, the same for every variant",
            "widths": "conv channels per stride-2 stage",
            "beta": "weight of the KL (nats per crop), the same for every variant",
            "pixel_weight": "weight of the pixel term (images in [0, 1]), the same for every variant",
            "lpips_weight": "weight of LPIPS in the lpips and lpips_gan variants",
            "gan_weight": "weight of the adversarial term in lpips_gan (times the adaptive weight)",
            "disc_features": "what the discriminator sees: heads on LPIPS's frozen AlexNet (alexnet, crops of 64 or more) or a PatchGAN on pixels",
            "disc_width": "discriminator width (each AlexNet head's, or the PatchGAN's)",
            "disc_layers": "PatchGAN layers (2: 34x34 patches; pixels only)",
        }},
    )
    disc_start: float = field(default=0.1, metadata={"help": "fraction of the steps after which lpips_gan's discriminator starts"})
    variants: tuple[str, ...] = field(default=VARIANTS, metadata={"help": "the variants 'ae train' trains (others can train in a second process into the same --run; 'ae eval' needs all three)"})
    eval_crops: int = field(default=2048, metadata={"help": "fixed test crops the numbers are computed on"})
    eval_seed: int = 0
    eval_batch: int = field(default=64, metadata={"help": "crops per batch in evaluation"})
    figure_crops: int = field(default=8, metadata={"help": "test crops shown in the figure"})
    prior_samples: int = field(default=16, metadata={"help": "prior samples drawn per variant in the figure"})

    def __post_init__(self):
        if self.eval_crops < 2 or self.eval_batch < 1 or self.figure_crops < 1 or self.prior_samples < 1:
            raise ConfigError("eval_crops must be at least 2, eval_batch, figure_crops and prior_samples at least 1")
        if not 0 <= self.disc_start < 1:
            raise ConfigError(f"disc_start is a fraction of the steps in [0, 1), not {self.disc_start}")
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown or not self.variants:
            raise ConfigError(f"variants must be some of {', '.join(VARIANTS)}, not {', '.join(unknown) or 'none'}")
        if "lpips_gan" in self.variants and self.model.disc_features == "alexnet" and self.crop < 64:
            raise ConfigError(f"the AlexNet discriminator needs crops of 64 or more, not {self.crop}; use a larger crop or disc_features pixels")
        if self.model.beta < 0:  # the model checks its loss weights itself
            raise ConfigError(f"beta must be non-negative, not {self.model.beta}")


def train_folders(cfg: SharpnessConfig) -> list[Path]:
    """The given training folders, or BSDS500 train/ and val/ under $ENSO_DATA."""
    if cfg.train_data:
        return [data_dir("train_photos", given) for given in cfg.train_data]
    root = data_dir("train_photos") / "bsds500"
    return [data_dir("train_photos", root / split) for split in ("train", "val")]


def test_folder(cfg: SharpnessConfig) -> Path:
    return data_dir("train_photos", cfg.test_data or data_dir("train_photos") / "bsds500" / "test")


def eval_crops(cfg: SharpnessConfig, n: int | None = None) -> torch.Tensor:
    """The fixed test crops (n or ``eval_crops``, 3, crop, crop) in [0, 1], unflipped, as the module doc says."""
    photos = ImageFolder(test_folder(cfg), cfg.crop, flip=False)
    n = cfg.eval_crops if n is None else n
    return torch.stack([photos[(k % len(photos), cfg.eval_seed * 10**6 + k)] for k in range(n)])


def model_config(cfg: SharpnessConfig, variant: str, steps: int) -> PerceptualVAEConfig:
    """``perceptual_vae``'s config for ``variant`` of a ``steps``-step training: ``cfg.model`` on
    ``crop``² crops, without LPIPS (``mse``) or the GAN (``mse``, ``lpips``)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; use one of {', '.join(VARIANTS)}")
    m = cfg.model
    return dataclasses.replace(
        m,
        input_shape=(3, cfg.crop, cfg.crop),
        lpips_weight=0.0 if variant == "mse" else m.lpips_weight,
        gan_weight=m.gan_weight if variant == "lpips_gan" else 0.0,
        disc_start=int(cfg.disc_start * steps),
    )


@torch.no_grad()
def reconstruct(model, x: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior-mean reconstructions of ``x`` (N, 3, H, W) in [0, 1] and each crop's KL in nats,
    (N,), on the CPU; the model computes on its own device."""
    device = next(model.parameters()).device
    recs, kls = [], []
    for chunk in x.split(batch):
        mu, logvar = model.encode(chunk.to(device))
        recs.append(model.decode(mu).float().cpu())
        kls.append(kl_per_example(mu, logvar).cpu())
    return torch.cat(recs), torch.cat(kls)


def reconstruction_numbers(model, x: torch.Tensor, real: Any, batch: int, device: str | torch.device = "cpu") -> dict[str, float]:
    """One VAE's numbers on crops ``x`` (N, 3, H, W) in [0, 1] whose Inception features are ``real``
    (N, 2048): ``psnr``, ``lpips``, ``fid``, ``kid``, ``kid_std``, ``hf_db``, ``kl``, as the module doc says."""
    x_hat, kl = reconstruct(model, x, batch)
    fake = distribution.inception_features(x_hat.split(batch), device=device)
    kid, kid_std = distribution.kid(fake, real, subset_size=min(1000, len(x)))
    pairs = zip(x_hat.split(batch), x.split(batch))
    return {
        "psnr": float(psnr(x_hat, x).mean()),
        "lpips": float(torch.cat([lpips_distance(a.to(device), b.to(device)).cpu() for a, b in pairs]).mean()),
        "fid": distribution.fid(fake, real),
        "kid": kid,
        "kid_std": kid_std,
        "hf_db": float(high_frequency_db(x_hat, x)),
        "kl": float(kl.mean()),
    }


@register_use
class Sharpness(Use):
    name = "sharpness"
    summary = "one conv VAE on BSDS500 crops trained on MSE, + LPIPS, + LPIPS + adversarial: PSNR, LPIPS, FID, KID, high frequencies"
    config_cls = SharpnessConfig
    default_train = {"steps": 8000, "batch_size": 32, "lr": 5e-4, "lr_schedule": "cosine", "decay_start": 0.5, "log_every": 50, "ckpt_every": 500}
    demo_train = {"steps": 120, "batch_size": 16, "lr": 1e-3, "log_every": 20, "ckpt_every": 120}
    demo_config = {"eval_crops": 128}

    eval_on_device = True

    def run_dir(self, run: Path, variant: str) -> Path:
        return Path(run) / "runs" / variant

    def train(self, cfg: SharpnessConfig, train, run: Path, resume: bool = False) -> None:
        lpips_model()  # a missing LPIPS or Inception file: one line before any run folder is made
        distribution.resolve_inception_weights()
        data = ImageFolder(train_folders(cfg), cfg.crop)
        for variant in VARIANTS:  # one seed: the same initial VAE and the same batches for all three
            if variant not in cfg.variants:
                continue
            folder = self.run_dir(run, variant)
            extra = {"variant": variant, "train_images": len(data)}
            # --resume continues the variants begun and starts those not reached yet
            begun = resume and (folder / "checkpoint.pt").exists()
            train_model("perceptual_vae", model_config(cfg, variant, train.steps), data, train, folder, begun, extra)

    def _models(self, run: Path, device: str | torch.device) -> dict[str, Any]:
        return {v: load_run(self.run_dir(run, v)).to(device) for v in VARIANTS}

    def evaluate(self, cfg: SharpnessConfig, run: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
        """The numbers of the module doc; the VAEs, LPIPS and Inception compute on ``device``."""
        models = self._models(run, device)
        t0 = time.perf_counter()
        x = eval_crops(cfg)

        real = distribution.inception_features(x.split(cfg.eval_batch), device=device)
        numbers: dict[str, Any] = {}
        for variant, model in models.items():
            numbers[variant] = {
                **reconstruction_numbers(model, x, real, cfg.eval_batch, device),
                "training": run_summary(self.run_dir(run, variant)),
            }
        base = numbers["mse"]
        for variant in VARIANTS[1:]:
            v = numbers[variant]
            v["vs_mse"] = {
                "lpips_change_pct": 100 * (v["lpips"] / base["lpips"] - 1),
                "fid_ratio": v["fid"] / base["fid"] if base["fid"] > 0 else None,
                "psnr_change_db": v["psnr"] - base["psnr"],
            }
        note = "" if len(x) >= FID_FULL_RANK else f"; fewer than {FID_FULL_RANK} crops: FID is biased upwards, compare only runs on equal crop counts"
        return {
            "eval_crops": len(x),
            "protocol": (
                f"{len(x)} fixed {cfg.crop}x{cfg.crop} crops of {test_folder(cfg)} (seed {cfg.eval_seed}), posterior-mean reconstructions; "
                f"psnr (dB, peak 1) and lpips (AlexNet) are means over crops; fid/kid: Inception pool3 of reconstructions vs originals; "
                f"hf_db: radially averaged power spectrum of reconstructions vs originals over {HIGH_BAND[0]}-{HIGH_BAND[1]} cycles/pixel (0 = as sharp as the originals); "
                f"kl: nats per crop{note}"
            ),
            **numbers,
            "eval_wall_time_s": round(time.perf_counter() - t0, 1),
        }

    def plot(self, cfg: SharpnessConfig, run: Path, device: str | torch.device = "cpu") -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from ..plotting import image_grid, save_figure

        models = self._models(run, device)
        x = eval_crops(cfg, min(cfg.figure_crops, cfg.eval_crops))
        rows = [("original", x)] + [(v, reconstruct(m, x, cfg.eval_batch)[0]) for v, m in models.items()]
        torch.manual_seed(cfg.eval_seed)
        z = torch.randn(cfg.prior_samples, cfg.model.latent_dim)  # the same draws through each decoder
        with torch.no_grad():
            samples = {v: m.decode(z.to(device)).float().cpu() for v, m in models.items()}
        k, side = len(x), max(1, round(cfg.prior_samples**0.5))
        fig = plt.figure(figsize=(max(9.0, 1.3 * k), 3.0 + 1.3 * len(rows)))
        grid = fig.add_gridspec(2, 3, height_ratios=[len(rows), 3.0])
        ax = fig.add_subplot(grid[0, :])
        ax.imshow(image_grid(torch.cat([r for _, r in rows]), nrow=k, pad=2))
        step = cfg.crop + 2
        ax.set_yticks([step * (i + 0.5) for i in range(len(rows))], [name for name, _ in rows])
        ax.set_xticks([])
        ax.set_title(f"{cfg.crop}x{cfg.crop} test crops (BSDS500 test, unseen in training) and their reconstructions")
        for i, (v, s) in enumerate(samples.items()):
            ax = fig.add_subplot(grid[1, i])
            ax.imshow(image_grid(s, nrow=side))
            ax.set_title(f"{v}: samples from the prior", fontsize=9)
            ax.axis("off")
        return save_figure(fig, self.figure_path(run))
