"""Representation: sparse autoencoders (TopK and L1) learn an overcomplete dictionary of digit strokes.

Both models encode an 8×8 digit into ``latent_dim`` nonnegative latents of which few are active,
and decode with one linear map (plus a sigmoid), so each latent owns one dictionary atom.

Numbers (test set unless named): reconstruction MSE per pixel, mean L0 (active latents per digit),
the fraction of latents never active on the training digits, and the accuracy of a logistic
regression reading the digit class from the sparse codes, beside the same probe on raw pixels.
Figure: each model's most used dictionary atoms (the decoded change one latent makes at its mean
active value), and a histogram of how often each latent is active.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..data import TensorItems
from ..data.digits import load_digits
from ..metrics.codebook import activation_frequency, dead_fraction, mean_l0
from ..metrics.image import mse
from ..models.sparse import SparseAEConfig
from .base import Use, load_run, register_use, train_model

VARIANTS = ("topk", "l1")


@dataclass
class RepresentationConfig:
    #: both models (a linear encoder and decoder: widths is fixed to none); each run sets its sparsity
    model: SparseAEConfig = field(default_factory=lambda: SparseAEConfig(l1_weight=0.1), metadata={
        "derived": ("input_shape", "widths", "sparsity"),
        "helps": {
            "latent_dim": "latents (64 pixels: 128 is 2x overcomplete)",
            "k": "active latents per digit for the TopK model",
            "l1_weight": "L1 penalty weight of the L1 model",
        },
    })
    atoms: int = field(default=64, metadata={"help": "dictionary atoms shown per model"})


def model_config(cfg: RepresentationConfig, sparsity: str) -> SparseAEConfig:
    """The ``sparsity`` (``topk`` or ``l1``) model's config: ``cfg.model``, linear, on 8×8 digits."""
    return dataclasses.replace(cfg.model, input_shape=(1, 8, 8), widths=(), sparsity=sparsity)


def linear_probe_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor) -> float:
    """Test accuracy of a standardised logistic regression fit on (N, F) features and labels."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    probe.fit(train_x.flatten(1).numpy(), train_y.numpy())
    return float(probe.score(test_x.flatten(1).numpy(), test_y.numpy()))


@torch.no_grad()
def dictionary_atoms(model, codes: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``n`` most often active latents' atoms: ``decode(s·eᵢ) − decode(0)`` with ``s`` the latent's
    mean active value on ``codes`` (N, L). Returns atoms (n, 1, 8, 8) in [-1, 1] and their latent ids."""
    freq = activation_frequency(codes)
    order = freq.argsort(descending=True)[: min(n, int((freq > 0).sum()))]
    active = codes != 0
    scale = (codes.sum(0) / active.sum(0).clamp_min(1))[order]
    one_hot = torch.zeros(len(order), codes.shape[1])
    one_hot[torch.arange(len(order)), order] = scale
    return model.decode(one_hot) - model.decode(torch.zeros(1, codes.shape[1])), order


@register_use
class Representation(Use):
    name = "representation"
    summary = "sparse autoencoders (TopK, L1) on digits: dictionary atoms, L0, dead latents, linear probe"
    config_cls = RepresentationConfig
    default_train = {"steps": 3000, "batch_size": 128, "lr": 3e-3, "lr_schedule": "cosine", "decay_start": 0.5}

    def train(self, cfg: RepresentationConfig, train, run: Path, resume: bool = False) -> None:
        x, _ = load_digits("train")
        runs = Path(run) / "runs"
        for sparsity in VARIANTS:
            train_model("sparse_ae", model_config(cfg, sparsity), TensorItems(x), train, runs / sparsity, resume, {"data": "sklearn digits 8x8"})

    def _codes(self, run: Path):
        runs = Path(run) / "runs"
        xtr, ytr = load_digits("train")
        xte, yte = load_digits("test")
        results = {}
        for sparsity in VARIANTS:
            model = load_run(runs / sparsity)
            with torch.no_grad():
                results[sparsity] = (model, model.encode(xtr), model(xte))
        return (xtr, ytr, xte, yte), results

    def evaluate(self, cfg: RepresentationConfig, run: Path) -> dict[str, Any]:
        (xtr, ytr, xte, yte), results = self._codes(run)
        numbers: dict[str, Any] = {"train_images": len(xtr), "test_images": len(xte)}
        for sparsity, (model, ztr, test) in results.items():
            numbers[sparsity] = {
                "recon_mse_per_pixel": float(mse(test["x_hat"], xte).mean()),
                "mean_l0": float(mean_l0(test["z"])),
                "dead_fraction_train": float(dead_fraction(ztr)),
                "linear_probe_accuracy": linear_probe_accuracy(ztr, ytr, test["z"], yte),
            }
        numbers["raw_pixels"] = {"linear_probe_accuracy": linear_probe_accuracy(xtr, ytr, xte, yte)}
        return numbers

    def plot(self, cfg: RepresentationConfig, run: Path) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np

        from ..plotting import image_grid, save_figure

        _, results = self._codes(run)
        fig, axes = plt.subplots(1, 3, figsize=(15, 5.2))
        bins = np.logspace(-4, 0, 33)
        for ax, (sparsity, (model, ztr, test)) in zip(axes, results.items()):
            atoms, _ = dictionary_atoms(model, ztr, cfg.atoms)
            if len(atoms):
                peak = atoms.flatten(1).abs().amax(1).clamp_min(1e-8).view(-1, 1, 1, 1)
                ax.imshow(image_grid(0.5 + 0.5 * atoms / peak, nrow=int(np.ceil(np.sqrt(len(atoms)))), pad=1), cmap="gray", vmin=0, vmax=1)
            l0 = float(mean_l0(test["z"]))
            ax.set_title(f"{sparsity}: {len(atoms)} most used atoms (L0 {l0:.1f})\nwhite adds ink, black removes it, grey = 0", fontsize=10)
            ax.axis("off")
            freq = activation_frequency(ztr).double().numpy()
            dead = float((freq == 0).mean())
            axes[2].hist(np.where(freq > 0, freq, 1.1e-4), bins=bins, alpha=0.6, label=f"{sparsity} (dead: {dead:.0%}, drawn at 1e-4)")
        ax = axes[2]
        ax.set_xscale("log")
        ax.set_xlabel("fraction of training digits on which the latent is active")
        ax.set_ylabel("latents")
        ax.set_title("latent activation frequency")
        ax.legend(fontsize=8)
        return save_figure(fig, self.figure_path(run))
