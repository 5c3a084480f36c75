#!/usr/bin/env python
"""Where the dark blotches of a horse→zebra generator come from: instance normalisation's droplet, or not.

A normalisation that divides each channel by its spatial statistics can be gamed by the network:
one strong, local spike in a channel shrinks every other position of that channel after the
norm (StyleGAN's "droplet", Karras et al. 2020). If the blotches are that artefact, (1) some
channels entering an InstanceNorm are far peakier than the rest, (2) their peaks sit on the
blotches, and (3) clipping those spikes before the norm removes the blotches. This script
measures all three on the test horses, for a translator's A → B generator:

* blotches: small patches (3–200 px) where the output is saturated black in every channel (the
  generator's tanh at −1) and the input was not black (:func:`blotch_mask`);
* peakiness of a channel: its largest activation over its mean absolute activation, per image;
  the *spike* of an image is the position of the peakiest channel's maximum at the norm layer
  with the largest peakiness;
* hit rate: how often the spike lies within 8 px of a blotch, against the chance that a uniformly
  random position does (the area within 8 px of a blotch);
* ablation: after each InstanceNorm, the output of its spiky channels (input peakiness over
  ``SPIKY`` times the layer's median channel's) clamped to ±``--clamp-at`` (the output has unit
  variance, so only spikes reach that far), so the statistics stay those the spike bought and
  only the spike's positions change; the blotches counted before and after.

    ENSO_DATA=../shared/data python scripts/translate_blotches.py [--model RUN] [--limit 120] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import translate
from shared.data.images import load_image
from translate.apply import resize
from translate.models.translator import to_signed, to_unit


def luminance(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] → (B, 1, H, W)."""
    return (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


def blotch_mask(inp: torch.Tensor, out: torch.Tensor, depth: float) -> torch.Tensor:
    """Blotches of ``out`` (B, 3, H, W): (B, 1, H, W) bool, True on the pixels of each blotch.

    A blotch is a small patch (3 to 200 pixels, 8-connected) where every channel of the output is
    saturated at black (≤ ``depth``) while the input was not black (luminance ≥ 0.03)."""
    from scipy import ndimage

    black = (out.amax(dim=1, keepdim=True) <= depth) & (luminance(inp) >= 0.03)
    keep = torch.zeros_like(black)
    for i in range(black.shape[0]):
        labels, n = ndimage.label(black[i, 0].numpy(), structure=[[1, 1, 1]] * 3)
        if n:
            sizes = torch.bincount(torch.from_numpy(labels).flatten(), minlength=n + 1)
            small = (sizes >= 3) & (sizes <= 200)
            small[0] = False
            keep[i, 0] = small[torch.from_numpy(labels).long()]
    return keep


def count_blotches(mask: torch.Tensor) -> int:
    """Blotches in a mask of :func:`blotch_mask`."""
    from scipy import ndimage

    return sum(ndimage.label(m[0].numpy(), structure=[[1, 1, 1]] * 3)[1] for m in mask)


#: a channel is spiky when its peakiness is this many times the median channel's of its layer
SPIKY = 4.0


class NormProbe:
    """Records what enters each InstanceNorm2d of a network; with ``clamp_at`` set, clamps the
    normalised output of its spiky channels to ±``clamp_at`` (the statistics the norm
    computed, spike included, stay as they were: only the spike's own positions change)."""

    def __init__(self, net: nn.Module):
        self.norms = [m for m in net.modules() if isinstance(m, nn.InstanceNorm2d)]
        self.inputs: list[torch.Tensor] = []
        self.clamp_at: float | None = None
        for m in self.norms:
            m.register_forward_pre_hook(self._record)
            m.register_forward_hook(self._clamp)

    def _record(self, module, args):
        self.inputs.append(args[0].detach())

    def _clamp(self, module, args, out):
        if self.clamp_at is None:
            return None
        flat = args[0].flatten(2).float()
        ratio = flat.amax(dim=2) / flat.abs().mean(dim=2).clamp_min(1e-8)  # (B, C)
        spiky = ratio > SPIKY * ratio.median(dim=1, keepdim=True).values  # far peakier than the layer's median channel
        bound = self.clamp_at  # the normalised output has unit variance: only a spike reaches far beyond
        return torch.where(spiky[..., None, None], out.clamp(-bound, bound), out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="run folder or export (default: the shipped horse2zebra)")
    p.add_argument("--data", type=Path, default=None, help="horse2zebra folder (default: $ENSO_DATA/horse2zebra)")
    p.add_argument("--limit", type=int, default=120)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--depth", type=float, default=0.01, help="the largest output value (of all channels) that counts as saturated black")
    p.add_argument("--clamp-at", type=float, default=6.0, help="the ablation clamps spiky channels' normalised output to ±this")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    data = args.data or Path(os.environ.get("ENSO_DATA", "data")) / "horse2zebra"
    files = sorted(f for f in (data / "testA").iterdir() if f.suffix.lower() in (".jpg", ".png"))[: args.limit]
    net = translate.load(args.model).model.generator("ab").eval()
    probe = NormProbe(net)
    hits = chance = 0.0
    count = {"as trained": 0, "spikes clamped": 0}
    peak_ratio: list[float] = []
    with_blotch = 0
    for f in files:
        x = resize(load_image(f, mode="RGB"), (args.size, args.size))[None]
        probe.inputs, probe.clamp_at = [], None
        with torch.no_grad():
            out = to_unit(net(to_signed(x)))
        mask = blotch_mask(x, out, args.depth)
        count["as trained"] += count_blotches(mask)
        peaks = []  # per norm layer: (peakiness of its peakiest channel, that channel's argmax, layer side)
        for t in probe.inputs:
            a = t[0].float().flatten(1)  # (C, HW)
            ratio = a.max(dim=1).values / a.abs().mean(dim=1).clamp_min(1e-8)
            c = int(ratio.argmax())
            median = ratio.median().clamp_min(1e-8)
            peaks.append((float(ratio[c] / median), int(a[c].argmax()), t.shape[-1]))
        best = max(peaks)
        peak_ratio.append(best[0])
        if mask.any():
            with_blotch += 1
            side = best[2]
            yy, xx = divmod(best[1], side)
            scale = args.size / side
            cy, cx = int((yy + 0.5) * scale), int((xx + 0.5) * scale)
            near = F.max_pool2d(mask.float(), 17, stride=1, padding=8)[0, 0]  # within 8 px of a blotch
            hits += float(near[min(cy, args.size - 1), min(cx, args.size - 1)] > 0)
            chance += float(near.mean())
        probe.inputs, probe.clamp_at = [], args.clamp_at
        with torch.no_grad():
            clamped = to_unit(net(to_signed(x)))
        count["spikes clamped"] += count_blotches(blotch_mask(x, clamped, args.depth))
    n = len(files)
    peak_ratio.sort()
    result = {
        "images": n,
        "images_with_blotches": with_blotch,
        "blotches_per_image": {k: v / n for k, v in count.items()},
        "spike_on_blotch_rate": hits / max(with_blotch, 1),
        "chance_rate": chance / max(with_blotch, 1),
        "peakiest_channel_over_median_channel": {"median": peak_ratio[n // 2], "max": peak_ratio[-1]},
        "norm_layers": len(probe.norms),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
