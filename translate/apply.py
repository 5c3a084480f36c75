"""Apply a trained translator to images of any size, and to files and folders.

:func:`apply_generator` runs one generator on one image (3, H, W) in [0, 1] and returns the same
shape in [0, 1]:

* **any size**: the image is reflect-padded at the bottom and right to a multiple of the
  generator's stride (4 for ResNet and mobile, 2^num_downs for U-Net) and the output cropped back;
* **tiny images** (a side under ``min_side`` = 64 px) are upsampled (bicubic) until the shorter
  side is 64, translated, and resized back (antialiased), since 7×7 convs and two downsamplings
  leave almost nothing of a 10 px image;
* **large images** (padded size over ``tile`` + 2·``margin``, i.e. over 1024 px plus margins) run
  in ``tile``² tiles, each with ``margin`` px of context on every side that is cut away, so memory
  is bounded by one tile. The generators' instance norms would otherwise normalise each tile by its
  own statistics and leave seams: a first pass over the whole image, downscaled to at most
  ``stats_side`` px (not at all when it fits), records each instance norm's per-channel mean and
  variance, and every tile is normalised with those. So a tiled image with a side up to
  ``stats_side`` matches the untiled result wherever the margin covers the receptive field, which
  the default margin does (96 px, rounded up to the stride: 256 for the U-Net; measured radii:
  ResNet-9 ±74 px, ResNet-6 ±58, U-Net-8 ±256); a larger image gets statistics from its
  downscaled version, the same for every tile, so no seams either.

:func:`translate_files` is the ``translate horse2zebra``/``zebra2horse``/``a2b``/``b2a`` commands'
file level (:class:`translate.options.ApplyOptions`): inputs (files or folders), outputs written
atomically as PNG, a tqdm bar, no overwriting without ``force``. :func:`load_translator` finds a
trained model: a run folder, its ``export/``, or the shipped weights; it refuses with
``FileNotFoundError`` / ``NotADirectoryError`` (no model there) or ``ValueError`` (not a readable
translator), which the command line prints as one line.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from torch import nn
from tqdm import tqdm

from shared.checkpoint import load_exported, model_from_checkpoint
from shared.data.images import load_image, save_image
from shared.outputs import plan_outputs
from shared.precision import resolve_device
from shared.threads import use_threads
from shared.tiling import tiled

from .models.generators import gmacs
from .models.translator import Translator, to_signed, to_unit

if TYPE_CHECKING:
    from .options import ApplyOptions

Direction = Literal["ab", "ba"]
WEIGHTS_DIR = Path(__file__).parent / "weights"
TILE, MARGIN, STATS_SIDE, MIN_SIDE = 1024, 96, 1024, 64
#: output suffixes that keep an input's alpha channel
ALPHA_SUFFIXES = {".png", ".webp", ".tif", ".tiff"}


def round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def resize(img: torch.Tensor, size: tuple[int, int], mode: Literal["bicubic", "bilinear"] = "bicubic", clamp: bool = True) -> torch.Tensor:
    """Antialiased resize of (C, H, W) or (B, C, H, W) to ``size`` = (H', W') (clamped to [0, 1])."""
    x = img[None] if img.ndim == 3 else img
    y = F.interpolate(x, size=size, mode=mode, antialias=True, align_corners=False)
    y = y.clamp(0, 1) if clamp else y
    return y[0] if img.ndim == 3 else y


def reflect_pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad (B, C, H, W) at the bottom and right to sides divisible by ``multiple``
    (repeatedly where the pad exceeds the image; replicate for a side of 1 px)."""
    for dim in (2, 3):
        while x.shape[dim] % multiple:
            need = round_up(x.shape[dim], multiple) - x.shape[dim]
            step = min(need, x.shape[dim] - 1)  # reflection reaches at most side - 1 px
            mode = "reflect" if step > 0 else "replicate"
            step = step if step > 0 else need
            x = F.pad(x, (0, 0, 0, step) if dim == 2 else (0, step, 0, 0), mode=mode)
    return x


@contextlib.contextmanager
def instance_norm_stats(net: nn.Module, stats: dict[str, tuple[torch.Tensor, torch.Tensor]], record: bool):
    """Within the block, ``net``'s InstanceNorm2d layers record their input's per-channel mean and
    variance into ``stats`` (``record=True``, outputs unchanged) or normalise with ``stats``
    instead of their input's own statistics (``record=False``). Recording takes a batch of one."""

    def hook(name: str, m: nn.InstanceNorm2d, inputs, output):
        x = inputs[0]
        if record:
            var, mean = torch.var_mean(x.detach().float(), dim=(2, 3), correction=0)
            stats[name] = (mean[0], var[0])
            return None
        mean, var = stats[name]
        return F.instance_norm(x, mean, var, m.weight, m.bias, use_input_stats=False, eps=m.eps)

    handles = [
        m.register_forward_hook(lambda mod, i, o, _n=name: hook(_n, mod, i, o))
        for name, m in net.named_modules()
        if isinstance(m, nn.InstanceNorm2d)
    ]
    try:
        yield stats
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def apply_generator(
    generator: nn.Module, img: torch.Tensor, tile: int = TILE, margin: int = MARGIN, stats_side: int = STATS_SIDE, min_side: int = MIN_SIDE
) -> torch.Tensor:
    """Translate one image (3, H, W) in [0, 1] with ``generator`` ([-1, 1] → [-1, 1], with a
    ``stride``) → (3, H, W) in [0, 1]; see the module docstring for sizes, tiles and statistics."""
    if img.ndim != 3 or img.shape[0] != 3:
        raise ValueError(f"translation takes RGB images (3, H, W), not {tuple(img.shape)}")
    _, H, W = img.shape
    if H < 1 or W < 1:
        raise ValueError("the image is empty")
    if min(H, W) < min_side:
        s = min_side / min(H, W)
        big = resize(img, (max(min_side, round(H * s)), max(min_side, round(W * s))), "bicubic")
        out = apply_generator(generator, big, tile, margin, stats_side, min_side)
        return resize(out, (H, W), "bilinear")
    stride = generator.stride
    tile, margin = round_up(max(tile, 1), stride), round_up(max(margin, 0), stride)
    p = next(generator.parameters())
    x = reflect_pad_to(to_signed(img.to(p.device, p.dtype))[None], stride)
    _, _, Hp, Wp = x.shape
    if Hp <= tile + 2 * margin and Wp <= tile + 2 * margin:
        y = generator(x)
    else:
        stats: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        proxy = x
        if max(Hp, Wp) > stats_side:  # statistics from a downscaled copy: bounded memory
            s = stats_side / max(Hp, Wp)
            proxy = reflect_pad_to(resize(x, (max(1, round(Hp * s)), max(1, round(Wp * s))), "bilinear", clamp=False), stride)
        with instance_norm_stats(generator, stats, record=True):
            generator(proxy)
        with instance_norm_stats(generator, stats, record=False):
            y = tiled(generator, x, tile, margin)
    return to_unit(y[0, :, :H, :W].float()).cpu()


# -- models -------------------------------------------------------------------------------------
def load_translator(source: str | Path | None, dataset: str = "horse2zebra", device: str | torch.device = "cpu") -> Translator:
    """A trained translator from a run folder (its ``export/``, else its ``checkpoint.pt``), an
    export folder, or, with ``source`` None, the weights shipped for ``dataset``; in eval mode on
    ``device``. ``FileNotFoundError`` / ``NotADirectoryError`` when there is no model, ``ValueError``
    when the folder holds a damaged model or one that is not a translator."""
    if source is None:
        shipped = WEIGHTS_DIR / dataset
        if not (shipped / "model.json").is_file():
            raise FileNotFoundError(f"no {dataset} weights are shipped yet; give a run folder of 'translate train {dataset}' or its export/")
        source = shipped
    path = Path(source)
    if not path.is_dir():
        error = NotADirectoryError if path.exists() else FileNotFoundError
        raise error(f"{path} is not a folder; give a run folder of 'translate train' or its export/")
    try:
        if (path / "model.json").is_file() or (path / "export" / "model.json").is_file():
            model = load_exported(path, device)
        elif (path / "checkpoint.pt").is_file():
            model = model_from_checkpoint(path / "checkpoint.pt").to(device).eval()
        else:
            raise FileNotFoundError(f"{path} holds no trained model (export/ or checkpoint.pt); give a run folder of 'translate train'")
    except (json.JSONDecodeError, KeyError, TypeError, SafetensorError) as e:
        raise ValueError(f"the model in {path} cannot be read ({type(e).__name__}); it is damaged or not an ensō model") from None
    if not isinstance(model, Translator):
        name = getattr(model, "registry_name", type(model).__name__)
        raise ValueError(f"{path} holds a {name!r} model, not a translator; give a run of 'translate train'")
    return model


def work_macs(generator: nn.Module, size: int | tuple[int, int] = 256) -> float:
    """Multiply–accumulates of one pass of ``generator`` over a ``size`` image (H = W, or (H, W);
    each rounded up to the stride), counted without computing (:func:`translate.models.generators.gmacs`):
    the work by which :func:`shared.threads.use_threads` chooses threads."""
    h, w = (size, size) if isinstance(size, int) else size
    stride = getattr(generator, "stride", 1)
    return gmacs(generator, (round_up(h, stride), round_up(w, stride))) * 1e9


# -- files --------------------------------------------------------------------------------------
def translate_files(inputs: list[Path], out: Path, options: ApplyOptions) -> list[Path]:
    """Translate every image of ``inputs`` (files or folders) into ``out`` (a file for one input
    file, else a folder) as ``options`` say: the model, the direction A → B (``ab``) or B → A
    (``ba``), tiles, device, CPU threads (set for the process: :func:`shared.threads.use_threads`,
    by the work of a 256² image when 0) and ``force``. Returns the written files. Grey images come
    out RGB; RGBA images keep their alpha where the output format has one. Inputs, outputs and the
    model are checked before anything is written; an unreadable image stops the run there."""
    jobs = plan_outputs(list(inputs), Path(out), ".png", options.force)
    generator = load_translator(options.model, options.dataset, resolve_device(options.device)).generator(options.direction)
    use_threads(options.threads, work_macs(generator))
    written = []
    for src, dst in tqdm(jobs, desc=f"{options.dataset} {options.direction}", unit="img", disable=len(jobs) == 1):
        img = load_image(src, "auto")
        rgb = img.expand(3, -1, -1) if img.shape[0] == 1 else img[:3]
        y = apply_generator(generator, rgb, tile=options.tile)
        if img.shape[0] == 4 and dst.suffix.lower() in ALPHA_SUFFIXES:
            y = torch.cat([y, img[3:]])
        save_image(y, dst)
        written.append(dst)
        if len(jobs) == 1:
            print(f"{src} → {dst}: {img.shape[2]}×{img.shape[1]}")
    return written
