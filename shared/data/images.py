"""The one image-loading path of ensō: files → float tensors in [0, 1], with clear errors.

* :func:`list_images` finds the images of a folder (recursively), refusing a missing or empty one.
* :func:`load_image` reads one file as (C, H, W) float32 in [0, 1], converting to ``mode``
  (``RGB`` or ``L``; palette, CMYK, 16-bit and alpha images are converted), and turns unreadable,
  truncated and decompression-bomb files into a :class:`~shared.errors.UserError`.
* :func:`image_tensor` is the Python API's one input conversion: a path, PIL image, NumPy array or
  tensor → (C, H, W) float32 in [0, 1]; :func:`to_pil` goes back.
* :class:`ImageFolder` serves random crops (and flips) keyed by ``(index, item_seed)``.
* :func:`sample_photo` is a photo every install has (for the demos).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset

from ..errors import UserError
from .sampling import item_generator, split_key

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
#: Pixels above which an image is refused as a possible decompression bomb (Pillow's default × 2).
MAX_PIXELS = 2 * 89_478_485

#: the EXIF tag saying how a camera's frame must turn to stand upright
EXIF_ORIENTATION = 0x0112

Mode = Literal["RGB", "L", "RGBA", "auto"]


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted); a missing or image-less folder is a UserError."""
    folder = Path(folder)
    if not folder.exists():
        raise UserError(f"image folder {folder} does not exist; check the path")
    if not folder.is_dir():
        raise UserError(f"{folder} is a file, not a folder of images")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
    if not files:
        raise UserError(f"image folder {folder} holds no images ({', '.join(sorted(EXTENSIONS))}); point at a folder with images")
    return files


def open_image(path: str | os.PathLike, mode: Mode = "RGB") -> Image.Image:
    """Open, fully decode and convert one image with Pillow, turned upright by its EXIF orientation
    if it has one; errors name the file and the problem.

    ``mode="auto"`` keeps what the image holds: ``L`` for grey, ``RGBA`` when it has alpha, else ``RGB``.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"image {path} does not exist")
    try:
        with warnings.catch_warnings():
            # Pillow warns above its default limit and refuses above twice it (MAX_PIXELS), before
            # the size check below can speak; between the two the image is allowed
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise UserError(f"image {path} claims {im.width}×{im.height} pixels, over the {MAX_PIXELS:,} limit (a decompression bomb?)")
                im.load()
                if im.getexif().get(EXIF_ORIENTATION, 1) != 1:  # a camera's rotated frame: as viewers show it
                    im = ImageOps.exif_transpose(im)
                return convert_mode(im, mode)
    except UserError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(f"image {path} is too large to decode safely (a decompression bomb?)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise UserError(f"image {path} cannot be read ({e}); it is truncated, damaged or not an image") from None


def convert_mode(im: Image.Image, mode: Mode = "RGB") -> Image.Image:
    """A loaded PIL image in ``mode``: 16-bit grey scaled to 8 bits, any alpha kept as RGBA first;
    ``auto`` keeps what the image holds (``L``, ``RGBA`` or ``RGB``)."""
    if im.mode == "I;16" or im.mode == "I":
        im = im.point(lambda v: v / 256).convert("L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
    if mode == "auto":
        mode = "RGBA" if im.mode == "RGBA" else "L" if im.mode in ("L", "1") else "RGB"
    return im.convert(mode)


def sample_photo() -> Path:
    """Grace Hopper's portrait from matplotlib's bundled sample data (512×600 JPEG)."""
    import matplotlib.cbook

    return Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def save_image(img: torch.Tensor, path: str | os.PathLike) -> None:
    """(C, H, W) in [0, 1], C ∈ {1, 3, 4} → an image file (format from the suffix), written atomically."""
    from ..config import atomic_write_bytes
    import io

    im = to_pil(img)
    buf = io.BytesIO()
    fmt = Image.registered_extensions().get(Path(path).suffix.lower())
    if fmt is None:
        raise UserError(f"cannot tell the image format of {path} from its suffix; use .png")
    try:
        im.save(buf, format=fmt)
    except (OSError, ValueError, KeyError) as e:  # e.g. an RGBA image as JPEG
        raise UserError(f"cannot write this {im.mode} image as {fmt} ({e}); use .png") from None
    atomic_write_bytes(path, buf.getvalue())


def to_pil(img: torch.Tensor) -> Image.Image:
    """(C, H, W) in [0, 1], C ∈ {1, 3, 4} → a PIL image (``L``, ``RGB`` or ``RGBA``), rounded to 8 bits."""
    arr = img.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)


def to_tensor(im: Image.Image) -> torch.Tensor:
    """PIL image → (C, H, W) float32 in [0, 1]."""
    arr = np.asarray(im, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def load_image(path: str | os.PathLike, mode: Mode = "RGB") -> torch.Tensor:
    """One image file → (C, H, W) float32 in [0, 1]; C = 3 for ``RGB``, 1 for ``L``, 4 for ``RGBA``."""
    return to_tensor(open_image(path, mode))


def image_tensor(image, rgb: bool = False) -> torch.Tensor:
    """Any image the Python API takes → a new (C, H, W) float32 CPU tensor in [0, 1].

    ``image``: a path (read by :func:`load_image`), a PIL image, a NumPy array (H, W) or (H, W, C)
    of uint8 or of floats in [0, 1], or a tensor (C, H, W) of uint8 or of floats in [0, 1]; C ∈
    {1, 3, 4} (grey, RGB, RGBA). ``rgb=True`` returns 3 channels (grey repeated, alpha dropped),
    else the channels the image holds. Wrong shapes, dtypes or ranges raise ValueError, other
    types TypeError.
    """
    if isinstance(image, (str, os.PathLike)):
        return load_image(image, "RGB" if rgb else "auto")
    if isinstance(image, Image.Image):
        return to_tensor(convert_mode(image, "RGB" if rgb else "auto"))
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = image[:, :, None]
        if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
            raise ValueError(f"a NumPy image must be (H, W) or (H, W, C) with C = 1, 3 or 4, not {image.shape}")
        x = torch.from_numpy(np.ascontiguousarray(image).copy()).permute(2, 0, 1)
        what = "NumPy image"
    elif isinstance(image, torch.Tensor):
        if image.ndim == 4 and image.shape[0] == 1:
            raise ValueError(f"a tensor image must be one (C, H, W) image, not a batch {tuple(image.shape)}; pass image[0]")
        if image.ndim != 3 or image.shape[0] not in (1, 3, 4):
            hint = "; for (H, W, C) use image.permute(2, 0, 1)" if image.ndim == 3 and image.shape[2] in (1, 3, 4) else ""
            raise ValueError(f"a tensor image must be (C, H, W) with C = 1, 3 or 4, not {tuple(image.shape)}{hint}")
        x = image.detach().cpu().clone()
        what = "tensor image"
    else:
        raise TypeError(f"cannot take an image of type {type(image).__name__}; give a path, a PIL image, a NumPy array or a tensor")
    if x.shape[1] < 1 or x.shape[2] < 1:
        raise ValueError(f"the {what} is empty ({x.shape[1]}×{x.shape[2]} pixels)")
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
    elif x.is_floating_point():
        x = x.float()
        lo, hi = (float(v) for v in torch.aminmax(x))
        if not (0.0 <= lo and hi <= 1.0):  # NaN fails too
            raise ValueError(f"a float {what} must hold values in [0, 1], not [{lo:.4g}, {hi:.4g}]; scale it (e.g. divide by 255) or pass uint8")
    else:
        raise ValueError(f"a {what} must be uint8 or float in [0, 1], not {str(x.dtype).removeprefix('torch.')}")
    if rgb and x.shape[0] != 3:
        x = x.expand(3, -1, -1).clone() if x.shape[0] == 1 else x[:3].clone()
    return x.contiguous()


def random_crop(img: torch.Tensor, size: int, g: torch.Generator, flip: bool = True) -> torch.Tensor:
    """A ``size``×``size`` crop at a position drawn from ``g`` (and a horizontal flip with p = 0.5)."""
    _, h, w = img.shape
    if h < size or w < size:
        raise UserError(f"an image of {w}×{h} is smaller than the crop size {size}; lower --crop")
    top = int(torch.randint(0, h - size + 1, (1,), generator=g))
    left = int(torch.randint(0, w - size + 1, (1,), generator=g))
    out = img[:, top : top + size, left : left + size]
    if flip and bool(torch.rand((), generator=g) < 0.5):
        out = out.flip(-1)
    return out


class ImageFolder(Dataset):
    """Random ``crop``×``crop`` patches of the images under ``folders`` (one or several).

    ``ds[(index, item_seed)]`` → (C, crop, crop) float in [0, 1]; the crop position and flip come
    from ``item_seed``, so an epoch is reproducible. ``cache=True`` keeps decoded images in memory
    (uint8), which pays off for small sets such as BSDS500.
    """

    def __init__(self, folders: str | os.PathLike | list, crop: int, mode: Mode = "RGB", flip: bool = True, cache: bool = True):
        folders = folders if isinstance(folders, (list, tuple)) else [folders]
        self.files = [f for folder in folders for f in list_images(folder)]
        self.crop, self.mode, self.flip, self.cache = crop, mode, flip, cache
        self._cache: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.files)

    def image(self, i: int) -> torch.Tensor:
        if i in self._cache:
            return self._cache[i].float().div_(255.0)
        img = load_image(self.files[i], self.mode)
        if self.cache:
            self._cache[i] = img.mul(255.0).round_().to(torch.uint8)
        return img

    def __getitem__(self, key) -> torch.Tensor:
        i, seed = split_key(key)
        return random_crop(self.image(i), self.crop, item_generator(seed), self.flip)
