"""Training crops that are not clean photos: degradations and synthetic content (issue 23).

A codec trained on clean photos alone codes sensor noise, film grain, dithering and flat synthetic
content badly. :class:`Degraded` wraps a crop dataset (such as :class:`~shared.data.images.ImageFolder`)
and, per item and reproducibly from its key's seed, replaces a fraction ``synthetic`` of the crops
with synthetic content and degrades a further fraction ``degrade`` with one of :data:`DEGRADATIONS`:

=========== ==================================================================================
noise       Gaussian noise, σ log-uniform in 2–30 (of 255), on the luma alone or per channel
grain       blurred noise, stronger in the mid-tones (film grain), 4–24 (of 255)
blur        Gaussian blur, σ 0.4–2 pixels
jpeg        a JPEG round trip (Pillow), quality 8–75
dither      Floyd–Steinberg dithering to 2 grey levels or to 8–32 colours
posterise   2–4 bits per channel
exposure    very dark (× 0.08–0.4) or very bright (1 − (0.08–0.4) · (1 − x))
=========== ==================================================================================

Synthetic content (:func:`synthetic_crop`): flat rectangles, a linear or radial gradient, rendered
text or strokes (Pillow's own drawing, not matplotlib's renderer the content benchmark uses).
Every output is an RGB crop rounded to 8 bits, (3, H, W) float in [0, 1], like the photos it
replaces.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps
from torch.utils.data import Dataset
from torchvision.transforms.functional import gaussian_blur

from .images import to_pil, to_tensor
from .sampling import item_generator, split_key

#: so an item's degradation draws are independent of its crop's, which use the seed itself
STREAM = 0x5DEECE66D


def _u(g: torch.Generator, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def _choice(g: torch.Generator, n: int) -> int:
    return int(torch.randint(0, n, (), generator=g))


def _from_pil(im: Image.Image) -> torch.Tensor:
    return to_tensor(im.convert("RGB"))


def _luma(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).unsqueeze(0)


def noise(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    sigma = math.exp(_u(g, math.log(2 / 255), math.log(30 / 255)))
    shape = (1, *x.shape[1:]) if _u(g) < 0.5 else x.shape
    return x + sigma * torch.randn(shape, generator=g)


def grain(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n = gaussian_blur(torch.randn((1, 1, *x.shape[1:]), generator=g), [5, 5], [_u(g, 0.6, 1.2)] * 2)[0]
    n = n / n.std().clamp_min(1e-6)
    y = _luma(x)
    return x + _u(g, 4, 24) / 255 * n * (0.35 + 2.6 * y * (1 - y))


def blur(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    sigma = _u(g, 0.4, 2.0)
    k = 2 * math.ceil(3 * sigma) + 1
    return gaussian_blur(x.unsqueeze(0), [k, k], [sigma, sigma])[0]


def jpeg(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    buf = io.BytesIO()
    to_pil(x).save(buf, "JPEG", quality=int(_u(g, 8, 75)))
    return _from_pil(Image.open(buf))


def dither(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    im = to_pil(x)
    if _u(g) < 0.3:
        return _from_pil(im.convert("L").convert("1"))  # Pillow dithers (Floyd–Steinberg) by default
    return _from_pil(im.quantize(int(_u(g, 8, 33)), dither=Image.Dither.FLOYDSTEINBERG))


def posterise(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return _from_pil(ImageOps.posterize(to_pil(x), 2 + _choice(g, 3)))


def exposure(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    k = _u(g, 0.08, 0.4)
    return x * k if _u(g) < 0.5 else 1 - k * (1 - x)


DEGRADATIONS: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
    "noise": noise, "grain": grain, "blur": blur, "jpeg": jpeg, "dither": dither, "posterise": posterise, "exposure": exposure,
}

WORDS = "the a codec of image bits rate noise zebra graph plot axis value 0 1 2 3 4 5 6 7 8 9 % dB bpp PSNR".split()


def _colour(g: torch.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in torch.randint(0, 256, (3,), generator=g))


def synthetic_crop(height: int, width: int, g: torch.Generator) -> torch.Tensor:
    """One synthetic (3, height, width) image in [0, 1]: flat rectangles, a gradient, text or strokes."""
    kind = _choice(g, 4)
    if kind == 1:  # a linear or radial gradient between two random colours
        v, u = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
        if _u(g) < 0.5:
            a = _u(g, 0, 2 * math.pi)
            t = (u * math.cos(a) + v * math.sin(a) - min(0, math.cos(a)) - min(0, math.sin(a))) / (abs(math.cos(a)) + abs(math.sin(a)))
        else:
            t = (torch.hypot(u - _u(g), v - _u(g)) / _u(g, 0.5, 1.4)).clamp(0, 1)
        c0, c1 = (torch.tensor(_colour(g)).float().view(3, 1, 1) / 255 for _ in range(2))
        return _from_pil(to_pil(c0 + (c1 - c0) * t))
    im = Image.new("RGB", (width, height), _colour(g) if kind == 0 else (255, 255, 255) if _u(g) < 0.7 else _colour(g))
    draw = ImageDraw.Draw(im)
    if kind == 0:  # flat rectangles
        for _ in range(3 + _choice(g, 8)):
            x0, y0 = _choice(g, width), _choice(g, height)
            draw.rectangle((x0, y0, x0 + _choice(g, width // 2) + 4, y0 + _choice(g, height // 2) + 4), fill=_colour(g))
    elif kind == 2:  # lines of text
        font = ImageFont.load_default(size=int(_u(g, 9, 22)))
        ink = (0, 0, 0) if _u(g) < 0.6 else _colour(g)
        y = _u(g, -8, 4)
        while y < height:
            draw.text((_u(g, -10, 6), y), " ".join(WORDS[_choice(g, len(WORDS))] for _ in range(8)), fill=ink, font=font)
            y += font.size * _u(g, 1.1, 1.6)
    else:  # strokes: line art, arcs and plot-like polylines
        ink = (0, 0, 0) if _u(g) < 0.6 else _colour(g)
        for _ in range(4 + _choice(g, 12)):
            pts = [(_u(g, 0, width), _u(g, 0, height)) for _ in range(2 + _choice(g, 5))]
            if _u(g) < 0.3:
                x0, y0 = pts[0]
                r = _u(g, 4, max(width, height) / 2)
                draw.arc((x0 - r, y0 - r, x0 + r, y0 + r), _u(g, 0, 360), _u(g, 0, 360), fill=ink, width=1 + _choice(g, 3))
            else:
                draw.line(pts, fill=ink, width=1 + _choice(g, 3))
    return _from_pil(im)


@dataclass
class DegradationConfig:
    """How many training crops :class:`Degraded` changes; the defaults change none."""

    degrade: float = field(default=0.0, metadata={"help": "fraction of training crops degraded (noise, grain, blur, JPEG, dither, posterise, exposure)"})
    synthetic: float = field(default=0.0, metadata={"help": "fraction of training crops replaced by synthetic content (flat colours, gradients, text, lines)"})

    def __post_init__(self):
        if not (0 <= self.degrade <= 1 and 0 <= self.synthetic <= 1 and self.degrade + self.synthetic <= 1):
            raise ValueError(f"degrade ({self.degrade}) and synthetic ({self.synthetic}) are fractions of the crops; each in [0, 1], together at most 1")


class Degraded(Dataset):
    """``base`` with a fraction ``synthetic`` of its items replaced by :func:`synthetic_crop` and a
    fraction ``degrade`` passed through one of ``kinds`` (names of :data:`DEGRADATIONS`; all by default).

    ``ds[(index, item_seed)]`` → (3, H, W) float in [0, 1], a pure function of the key, like ``base``'s.
    """

    def __init__(self, base: Dataset, degrade: float = 0.0, synthetic: float = 0.0, kinds: tuple[str, ...] = tuple(DEGRADATIONS)):
        DegradationConfig(degrade, synthetic)  # checks the fractions
        unknown = [k for k in kinds if k not in DEGRADATIONS]
        if unknown or not kinds:
            raise ValueError(f"unknown degradation {unknown[0]!r}; use some of {', '.join(DEGRADATIONS)}" if unknown else "give at least one degradation")
        self.base, self.degrade, self.synthetic, self.kinds = base, degrade, synthetic, tuple(kinds)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key) -> torch.Tensor:
        _, seed = split_key(key)
        g = item_generator(seed ^ STREAM)
        x = self.base[key]
        u = _u(g)
        if u < self.synthetic:
            return synthetic_crop(x.shape[1], x.shape[2], g)
        if u < self.synthetic + self.degrade:
            y = DEGRADATIONS[self.kinds[_choice(g, len(self.kinds))]](x, g)
            return y.clamp(0, 1).mul(255).round().div(255)
        return x
