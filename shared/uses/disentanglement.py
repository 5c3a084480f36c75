"""Disentanglement: a β-VAE and a plain VAE on generated sprites, scored by MIG.

Both models share one conv architecture and a 10-D latent and train on the same procedural
dSprites-like images (:mod:`shared.data.sprites`); the β-VAE weighs the KL term by ``--beta``
(and, with ``--capacity``, a third model anneals a KL capacity instead, Burgess et al. 2018).
Numbers: MIG (and its per-factor gaps) of every model on held-out sprites, per-latent KL (nats),
reconstruction BCE through the posterior mean (nats per image) and the training steps and time.
Figure: the β-VAE's latent traversals (one row per latent, sorted by KL; columns set that latent
to -3 … 3 with the others at a real image's posterior mean), the per-latent KL of the models,
and the MIG of each in the title.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from ..data import TensorItems
from ..data.sprites import FACTOR_NAMES, Sprites, num_combinations, render, sample_factors
from ..errors import UserError
from ..metrics.disentanglement import mig
from ..models.ae import reconstruction_loss
from ..models.vae import BetaVAEConfig, VAEConfig
from .base import Use, config_as, load_run, register_use, run_summary, train_model

#: what switches a capacity off: the VAE's own defaults, as the β-VAE and the plain VAE train
NO_CAPACITY = {"capacity_max": 0.0, "capacity_steps": VAEConfig.capacity_steps, "gamma": VAEConfig.gamma}


@dataclass
class DisentanglementConfig:
    images: int = field(default=20000, metadata={"help": "training sprites (distinct factor combinations)"})
    eval_images: int = field(default=5000, metadata={"help": "held-out sprites MIG and the KLs are measured on"})
    data_seed: int = field(default=0, metadata={"help": "seed of the sprite sample"})
    #: every model's architecture, the β-VAE's β and the capacity-annealed β-VAE's capacity
    model: BetaVAEConfig = field(
        default_factory=lambda: BetaVAEConfig(beta=8.0, capacity_max=25.0, capacity_steps=0),
        metadata={"derived": ("input_shape",), "helps": {
            "widths": "conv channels per downsampling (both models)",
            "beta": "KL weight of the β-VAE (the plain VAE has 1)",
            "capacity_max": "KL capacity in nats reached at the end of annealing (with --capacity)",
            "capacity_steps": "steps to anneal the capacity over (0: all training steps)",
            "gamma": "weight of |KL - C| in the capacity-annealed β-VAE",
        }},
    )
    capacity: bool = field(default=False, metadata={"help": "also train a capacity-annealed β-VAE (a third model: 1.5× the time)"})
    bins: int = field(default=20, metadata={"help": "histogram bins per latent for MIG's mutual information"})
    traversal_columns: int = field(default=9, metadata={"help": "values from -3 to 3 per latent in the traversal figure"})


def _sprites(cfg: DisentanglementConfig, split: Literal["train", "held_out"]) -> Sprites:
    """The training or held-out sprites: disjoint slices of one permutation of the factor grid."""
    total = num_combinations()
    if cfg.images < 1 or cfg.eval_images < 2 or cfg.images + cfg.eval_images > total:
        raise UserError(f"images (at least 1) plus eval_images (at least 2) must not exceed the {total} sprite factor combinations")
    factors = sample_factors(cfg.images + cfg.eval_images, cfg.data_seed)
    factors = factors[: cfg.images] if split == "train" else factors[cfg.images :]
    return Sprites(render(factors), factors)


def model_configs(cfg: DisentanglementConfig, steps: int) -> dict[str, tuple[str, Any]]:
    """Run name → (registered model, config) of every model this config trains for ``steps`` steps:
    the β-VAE, the plain VAE (β = 1) and, with ``capacity``, the capacity-annealed β-VAE."""
    model = dataclasses.replace(cfg.model, input_shape=(1, 64, 64))
    beta = dataclasses.replace(model, **NO_CAPACITY)
    runs = {"beta_vae": ("beta_vae", beta), "vae": ("vae", config_as("vae", beta, beta=1.0))}
    if cfg.capacity:
        runs["beta_vae_capacity"] = ("beta_vae", dataclasses.replace(model, capacity_steps=model.capacity_steps or steps))
    return runs


def kl_per_latent(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Mean KL(q(z_j | x) ‖ N(0, 1)) of every latent over the images: (N, D) × 2 → (D,) nats."""
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    return torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).mean(0)


@torch.no_grad()
def _encode(model, x: torch.Tensor, with_bce: bool = False, batch: int = 500) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Posterior means and log-variances (N, D) of images ``x`` (N, 1, 64, 64), and (when asked)
    the mean reconstruction BCE through the means in nats per image (else NaN)."""
    mus, logvars, bce = [], [], 0.0
    for i in range(0, len(x), batch):
        xb = x[i : i + batch]
        mu, logvar = model.encode(xb)
        if with_bce:
            bce += float(reconstruction_loss(model.decoder(mu), xb, "bce")) * len(xb)
        mus.append(mu)
        logvars.append(logvar)
    return torch.cat(mus), torch.cat(logvars), bce / len(x) if with_bce else float("nan")


@register_use
class Disentanglement(Use):
    name = "disentanglement"
    summary = "β-VAE vs VAE on generated sprites: MIG, per-latent KL, latent traversals"
    config_cls = DisentanglementConfig
    default_train = {"steps": 1500, "batch_size": 64, "lr": 1e-3}

    def train(self, cfg: DisentanglementConfig, train, run: Path, resume: bool = False) -> None:
        sprites = _sprites(cfg, "train")
        data = TensorItems(sprites.images)
        runs = Path(run) / "runs"
        for name, (model, mc) in model_configs(cfg, train.steps).items():
            train_model(model, mc, data, train, runs / name, resume, {"data": "sprites", "images": cfg.images})

    def evaluate(self, cfg: DisentanglementConfig, run: Path) -> dict[str, Any]:
        held = _sprites(cfg, "held_out")
        runs = Path(run) / "runs"
        numbers: dict[str, Any] = {"eval_images": len(held), "factors": list(FACTOR_NAMES)}
        for name in model_configs(cfg, 0):
            model = load_run(runs / name)
            mu, logvar, bce = _encode(model, held.images, with_bce=True)
            kl = kl_per_latent(mu, logvar)
            score = mig(mu, held.factors, cfg.bins)
            numbers[name] = {
                "mig": score.mig,
                "mig_per_factor": dict(zip(FACTOR_NAMES, score.gaps.round(4).tolist())),
                "top_latent_per_factor": dict(zip(FACTOR_NAMES, score.top_latent.tolist())),
                "kl_per_latent_nats": kl.round(decimals=4).tolist(),
                "kl_nats": float(kl.sum()),
                "recon_bce_nats": bce,
                "training": run_summary(runs / name),
                "beta": model.config.beta if model.config.capacity_max <= 0 else None,
                "capacity_max": model.config.capacity_max or None,
            }
        return numbers

    def plot(self, cfg: DisentanglementConfig, run: Path) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from ..plotting import image_grid, save_figure

        held = _sprites(cfg, "held_out")
        runs = Path(run) / "runs"
        names = list(model_configs(cfg, 0))
        models = {name: load_run(runs / name) for name in names}
        stats = {}
        for name, model in models.items():
            mu, logvar, _ = _encode(model, held.images)
            stats[name] = (kl_per_latent(mu, logvar), mig(mu, held.factors, cfg.bins))
        beta = models["beta_vae"]
        kl, score = stats["beta_vae"]
        # each used latent's best-known factor: its mutual information over the factor's entropy
        share = score.mutual_info / score.entropy
        order = torch.argsort(kl, descending=True)
        values = torch.linspace(-3, 3, cfg.traversal_columns)
        x = held.images[:1]
        with torch.no_grad():
            mu = beta.encode(x)[0][0]
            z = mu.repeat(len(order), len(values), 1)  # (latents, columns, D)
            for row, j in enumerate(order.tolist()):
                z[row, :, j] = values
            frames = beta.decode(z.flatten(0, 1))
            recon = beta.decode(mu[None])
        rows = len(order)
        fig = plt.figure(figsize=(13, 0.62 * rows + 2.2))
        grid = fig.add_gridspec(2, 2, width_ratios=[cfg.traversal_columns, 5], height_ratios=[1, 2.2])
        ax = fig.add_subplot(grid[:, 0])
        ax.imshow(image_grid(frames, nrow=len(values)), cmap="gray", vmin=0, vmax=1)
        cell = 64 + 1
        ax.set_yticks([1 + cell * r + 32 for r in range(rows)])
        labels = [
            f"z{j}  {kl[j]:.2f} nats\n" + (f"{FACTOR_NAMES[share[j].argmax()]} {share[j].max():.2f}" if kl[j] >= 0.05 else "unused")
            for j in order.tolist()
        ]
        ax.set_yticklabels(labels, fontsize=7)
        ax.set_xticks([1 + cell * c + 32 for c in range(len(values))])
        ax.set_xticklabels([f"{v:.1f}" for v in values.tolist()], fontsize=8)
        ax.set_xlabel("value of the traversed latent (others at the image's posterior mean)")
        ax.set_title(f"β-VAE (β={beta.config.beta:g}) latent traversals, rows by KL; labels: KL, best factor I(z;v)/H(v)", fontsize=9)
        ax = fig.add_subplot(grid[0, 1])
        ax.imshow(image_grid(torch.cat([x, recon]), nrow=2), cmap="gray", vmin=0, vmax=1)
        ax.set_title("the real image and its β-VAE reconstruction", fontsize=9)
        ax.axis("off")
        ax = fig.add_subplot(grid[1, 1])
        width = 0.8 / len(names)
        for i, name in enumerate(names):
            sorted_kl = torch.sort(stats[name][0], descending=True).values
            ax.bar(torch.arange(len(sorted_kl)) + (i - (len(names) - 1) / 2) * width, sorted_kl, width, label=name)
        ax.set_xlabel("latent rank by KL (each model sorted)")
        ax.set_ylabel("KL per latent (nats, held-out mean)")
        ax.legend(fontsize=8)
        title = ", ".join(f"{name} {stats[name][1].mig:.3f}" for name in names)
        fig.suptitle(f"MIG on {len(held)} held-out sprites: {title}")
        return save_figure(fig, self.figure_path(run))
