#!/usr/bin/env python
"""Can a discriminator tell the codec's perceptual decoder from photos? Side by side, in one run.

Each discriminator setting (of :class:`shared.losses.perceptual_adversarial.PerceptualLossConfig`)
trains alone, for ``--steps`` steps of ``--batch`` random crops of the training photos, against the
shipped perceptual decoder's reconstructions of the same crops at a random quality in [0, 1] (the
decoder is fixed, so a discriminator that learns shows it). Every ``--every`` steps it scores a
fixed held-out set of crops (other photos, both kinds) and prints the mean logit of the photos and
of the reconstructions, and how often a photo scores above its own reconstruction (0.5: chance).
Same seed, same batches for every setting.

    python scripts/probe_discriminators.py --data $ENSO_DATA/train_photos/bsds500/train \
        --held-out $ENSO_DATA/train_photos/bsds500/val [--steps 150] [--threads 1] [--only alexnet]
"""
from __future__ import annotations

import argparse
import time

import torch

from compress.codec import WEIGHTS_DIR
from shared.checkpoint import load_exported
from shared.data.images import ImageFolder
from shared.errors import UserError, run_cli
from shared.losses.perceptual_adversarial import PerceptualAdversarialLoss, PerceptualLossConfig

SETTINGS = {
    "pixels, spectral norm (shipped recipe)": dict(disc_features="pixels"),
    "pixels, no spectral norm, lr x4": dict(disc_features="pixels", disc_spectral_norm=False, disc_lr_ratio=4),
    "alexnet, no spectral norm, lr x4": dict(disc_features="alexnet", disc_spectral_norm=False, disc_lr_ratio=4),
    "alexnet + fine head, no spectral norm, lr x4": dict(disc_features="alexnet", disc_fine_head=True, disc_spectral_norm=False, disc_lr_ratio=4),
}


def crops(folder: ImageFolder, keys) -> torch.Tensor:
    return torch.stack([folder[k] for k in keys])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="folder of training photos")
    ap.add_argument("--held-out", required=True, help="folder of photos the discriminators never train on")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--lr", type=float, default=1e-4, help="the model's learning rate (times each setting's disc_lr_ratio)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default="", help="run only the settings whose name contains this text")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    decoder = load_exported(WEIGHTS_DIR / "mean_scale_cc_perceptual").eval()
    train, held = ImageFolder(args.data, args.crop), ImageFolder(args.held_out, args.crop, flip=False)

    def decoded(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            _, y_in = decoder._decoded(x)
            return decoder.g_s(y_in).float().clamp(0, 1)

    torch.manual_seed(1)
    val_x = crops(held, [(i % len(held), 10**7 + i) for i in range(16)])
    val_f = decoded(val_x)
    print(f"held-out crops: {len(val_x)}, reconstructions at {float(-10 * torch.log10(((val_f - val_x) ** 2).mean())):.2f} dB PSNR")
    settings = {name: kw for name, kw in SETTINGS.items() if args.only in name}
    if not settings:
        raise UserError(f"--only {args.only!r} matches no setting; the settings are: {'; '.join(SETTINGS)}")
    for name, kw in settings.items():
        torch.manual_seed(0)
        loss = PerceptualAdversarialLoss(PerceptualLossConfig(lpips_weight=0, **kw))
        opt = loss.discriminator_optimizer(args.lr)
        g = torch.Generator().manual_seed(1)
        t0 = time.perf_counter()
        print(name)
        for step in range(1, args.steps + 1):
            idx = torch.randint(0, len(train), (args.batch,), generator=g)
            x = crops(train, [(int(i), step * args.batch + k) for k, i in enumerate(idx)])
            torch.manual_seed(step)  # the same random qualities and augmentations for every setting
            out = loss.discriminator_loss(x, decoded(x), step=0)
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
            if step % args.every == 0 or step == args.steps:
                with torch.no_grad():
                    real, fake = loss._score(val_x, None).flatten(1).mean(1), loss._score(val_f, None).flatten(1).mean(1)
                print(f"  step {step:4d}  loss {float(out['loss'].detach()):.3f}  held-out logit photo {float(real.mean()):+.3f} "
                      f"reconstruction {float(fake.mean()):+.3f}  photo above its reconstruction {float((real > fake).float().mean()):.2f}"
                      f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
