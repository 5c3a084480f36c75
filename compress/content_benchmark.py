"""A content benchmark for codecs, built without downloads: images of the kinds a codec trained on
clean photos meets outside its training set (issue 23).

:func:`build_benchmark` writes PNGs named ``TYPE__NAME.png`` (8-bit RGB, 256–384 pixels a side),
deterministic (fixed seeds), and ``content.json`` mapping each file to its content type. The
photos come from matplotlib's bundled sample (``grace_hopper.jpg``, :func:`shared.data.images.sample_photo`);
the rest is made here:

========== ==============================================================================
type       images
========== ==============================================================================
photo      two crops of the sample photo, as they are
noise      the photo + Gaussian noise, σ = 4, 10 and 25 (of 255)
grain      the photo + film grain (blurred noise, stronger in the mid-tones), two strengths
dither     the photo in 16 colours (Floyd–Steinberg), and in black and white (Floyd–Steinberg)
posterise  the photo at 3 and at 2 bits per channel
text       a page of rendered text (matplotlib)
plot       a line-and-scatter plot (matplotlib)
line-art   black strokes on white (matplotlib)
flat       flat colour rectangles
gradient   a linear and a radial colour gradient
exposure   the photo very dark (× 0.12) and very bright (1 − 0.12 · (1 − x))
mixed      the photo above a noisy, dithered flat area (the failure of issue 23)
========== ==============================================================================

Kodak is not in it (``compress eval --data $ENSO_DATA/kodak`` evaluates it). ``compress eval``
groups per-image results by ``content.json`` when the folder has one (:mod:`compress.per_image`).

    python scripts/make_content_benchmark.py -o content/   # then: compress eval --data content/ -o rd_content/
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageOps

from shared.data.images import sample_photo

SIDE = 256
MANIFEST = "content.json"


def _photo(crop: int = 0) -> Image.Image:
    """A SIDE × SIDE RGB crop of the sample photo (512×600): 0 the face, 1 the uniform and background."""
    with Image.open(sample_photo()) as im:
        im = im.convert("RGB")
        box = (128, 100, 384, 356) if crop == 0 else (0, 300, 512, 556)
        return im.crop(box).resize((SIDE, SIDE), Image.Resampling.LANCZOS)


def _u8(a: np.ndarray) -> Image.Image:
    a = np.asarray(a, dtype=np.float64)
    return Image.fromarray(np.clip(np.round(a * 255), 0, 255).astype(np.uint8), "RGB" if a.ndim == 3 else "L").convert("RGB")


def _f(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("RGB"), dtype=np.float64) / 255


def _noise(sigma: float, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    x = _f(_photo())
    return _u8(x + rng.normal(0, sigma / 255, x.shape))


def _grain(strength: float, seed: int) -> Image.Image:
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    x = _f(_photo(1))
    g = gaussian_filter(rng.normal(0, 1, x.shape[:2]), 0.8)
    g /= g.std()
    luma = x.mean(2, keepdims=True)
    return _u8(x + strength / 255 * g[..., None] * (0.35 + 2.6 * luma * (1 - luma)))


def _figure(draw: Callable, seed: int) -> Image.Image:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(SIDE / 100, SIDE / 100), dpi=100)
    draw(fig, np.random.default_rng(seed))
    fig.canvas.draw()
    im = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    plt.close(fig)
    return im


def _text(fig, rng) -> None:
    words = "the quick brown fox jumps over a lazy dog while sixty zebras quietly graze near".split()
    lines = [" ".join(rng.choice(words, 5)) for _ in range(16)]
    fig.text(0.03, 0.97, "Rendered text\n" + "\n".join(lines), va="top", fontsize=7.5, family="DejaVu Sans")


def _plot(fig, rng) -> None:
    ax = fig.add_axes((0.14, 0.12, 0.82, 0.8))
    t = np.linspace(0, 4 * np.pi, 200)
    ax.plot(t, np.sin(t), t, np.cos(t) * np.exp(-t / 8))
    ax.scatter(rng.uniform(0, 4 * np.pi, 40), rng.normal(0, 0.5, 40), s=6, c="tab:red")
    ax.set(title="a plot", xlabel="t")
    ax.grid(alpha=0.4)


def _line_art(fig, rng) -> None:
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    for _ in range(14):
        r, cx, cy = rng.uniform(0.05, 0.35), rng.uniform(0, 1), rng.uniform(0, 1)
        t = np.linspace(0, 2 * np.pi * rng.uniform(0.3, 1), 100)
        ax.plot(cx + r * np.cos(t), cy + r * np.sin(t), "k", lw=rng.uniform(0.6, 2.2))
    for _ in range(10):
        ax.plot(rng.uniform(0, 1, 2), rng.uniform(0, 1, 2), "k", lw=rng.uniform(0.5, 1.8))
    ax.set(xlim=(0, 1), ylim=(0, 1))


def _flat(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    a = np.ones((SIDE, SIDE, 3)) * 0.93
    for _ in range(9):
        y0, x0 = rng.integers(0, SIDE - 32, 2)
        h, w = rng.integers(24, 140, 2)
        a[y0 : y0 + h, x0 : x0 + w] = rng.uniform(0, 1, 3)
    return _u8(a)


def _gradient(kind: str) -> Image.Image:
    v, u = np.mgrid[0:SIDE, 0:SIDE] / (SIDE - 1)
    if kind == "linear":
        return _u8(np.stack([u, 0.5 * (u + v), 1 - v], -1))
    r = np.hypot(u - 0.4, v - 0.55) / 0.8
    return _u8(np.stack([1 - r, 0.6 * (1 - r) + 0.2, 0.3 + 0.5 * r], -1))


def _mixed(seed: int) -> Image.Image:
    """The photo (SIDE × SIDE) above a SIDE-wide, SIDE/2-high flat area of grey-beige with noise
    (σ = 6 of 255), Floyd–Steinberg dithered to 32 levels per channel."""
    rng = np.random.default_rng(seed)
    flat = np.array([0.62, 0.58, 0.52]) + rng.normal(0, 6 / 255, (SIDE // 2, SIDE, 3))
    levels = Image.new("P", (1, 1))
    levels.putpalette([round(255 * k / 31) for k in range(32) for _ in range(3)] * 8)
    bands = [_u8(flat[..., c]).convert("L").convert("RGB").quantize(palette=levels, dither=Image.Dither.FLOYDSTEINBERG) for c in range(3)]
    area = np.stack([_f(b)[..., 0] for b in bands], -1)
    return _u8(np.concatenate([_f(_photo()), area], 0))


def images() -> dict[str, tuple[str, Callable[[], Image.Image]]]:
    """File name → (content type, a function making its image)."""
    photo = _photo
    return {
        "photo__face.png": ("photo", lambda: photo(0)),
        "photo__uniform.png": ("photo", lambda: photo(1)),
        "noise__sigma4.png": ("noise", lambda: _noise(4, 1)),
        "noise__sigma10.png": ("noise", lambda: _noise(10, 2)),
        "noise__sigma25.png": ("noise", lambda: _noise(25, 3)),
        "grain__light.png": ("grain", lambda: _grain(8, 4)),
        "grain__heavy.png": ("grain", lambda: _grain(20, 5)),
        "dither__16colours.png": ("dither", lambda: photo().quantize(16, dither=Image.Dither.FLOYDSTEINBERG).convert("RGB")),
        "dither__bilevel.png": ("dither", lambda: photo().convert("L").convert("1").convert("RGB")),
        "posterise__3bit.png": ("posterise", lambda: ImageOps.posterize(photo(), 3)),
        "posterise__2bit.png": ("posterise", lambda: ImageOps.posterize(photo(), 2)),
        "text__page.png": ("text", lambda: _figure(_text, 6)),
        "plot__lines.png": ("plot", lambda: _figure(_plot, 7)),
        "line-art__strokes.png": ("line-art", lambda: _figure(_line_art, 8)),
        "flat__rectangles.png": ("flat", lambda: _flat(9)),
        "gradient__linear.png": ("gradient", lambda: _gradient("linear")),
        "gradient__radial.png": ("gradient", lambda: _gradient("radial")),
        "exposure__dark.png": ("exposure", lambda: _u8(_f(photo()) * 0.12)),
        "exposure__bright.png": ("exposure", lambda: _u8(1 - 0.12 * (1 - _f(photo())))),
        "mixed__photo-over-dither.png": ("mixed", lambda: _mixed(10)),
    }


def build_benchmark(out_dir: str | Path, force: bool = False) -> list[Path]:
    """Write every image of :func:`images` and ``content.json`` ({file: type}) into ``out_dir``;
    returns the image paths. An existing file there is a ValueError unless ``force``."""
    out = Path(out_dir)
    made = images()
    targets = [out / name for name in made] + [out / MANIFEST]
    if not force and any(p.exists() for p in targets):
        raise ValueError(f"{out} already holds a content benchmark; pass --force to rewrite it")
    out.mkdir(parents=True, exist_ok=True)
    for name, (_, make) in made.items():
        make().save(out / name, optimize=False)
    (out / MANIFEST).write_text(json.dumps({name: kind for name, (kind, _) in made.items()}, indent=1) + "\n")
    return targets[:-1]


def content_types(data_dir: str | Path) -> dict[str, str] | None:
    """{image file name: content type} from ``data_dir``/content.json, or None when there is none."""
    path = Path(data_dir) / MANIFEST
    if not path.is_file():
        return None
    types = json.loads(path.read_text())
    if not isinstance(types, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in types.items()):
        raise ValueError(f"{path} must map image file names to content types")
    return types
