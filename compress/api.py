"""The codec from Python: images of any kind in, ``.enso`` bytes out, and back.

>>> import compress
>>> codec = compress.load("mean_scale_cc")               # a shipped name, or a trained folder
>>> data = codec.encode("photo.png", quality=0.5)        # or a PIL image, NumPy array, tensor
>>> image = codec.decode(data)                           # a PIL image

:class:`ImageCodec` is a thin layer over :class:`compress.codec.Codec` (its ``.codec``): inputs go
through :func:`shared.data.images.image_tensor`, the options are those of ``compress encode``
(:class:`~compress.options.EncodeOptions`: ``quality``, ``target_bpp``, ``refine``), and the bytes are the same file the command writes.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from PIL import Image

from shared.data.images import image_tensor, to_pil

from .codec import DEFAULT_CODEC, Codec
from .options import EncodeOptions


class ImageCodec:
    """A loaded codec for Python callers (build it with :func:`load`); ``.codec`` is the :class:`Codec`."""

    def __init__(self, codec: Codec):
        self.codec = codec

    def encode(self, image, quality: float | None = None, target_bpp: float | None = None, refine: int = 0) -> bytes:
        """An image (path, PIL image, NumPy array (H, W[, C]) or tensor (C, H, W), uint8 or float in
        [0, 1]; grey, RGB or RGBA) → ``.enso`` bytes, at ``quality`` in [0, 1] (default 0.5; higher
        means more bits) or as the largest file within ``target_bpp`` bits per pixel, not both;
        ``refine`` > 0 spends that many gradient steps on the latent (better quality, slower)."""
        options = EncodeOptions(quality=quality, target_bpp=target_bpp, refine=refine)  # checks them (ValueError)
        img = image_tensor(image)
        if target_bpp is not None:
            return self.codec.encode_to_bpp(img, target_bpp, refine=refine)
        return self.codec.encode(img, options.coding_quality, refine)

    def decode_tensor(self, data: bytes) -> torch.Tensor:
        """``.enso`` bytes → (C, H, W) float in [0, 1] (C = 3 for RGB, 1 for grey, 4 for RGBA)."""
        return self.codec.decode(_as_bytes(data))

    def decode(self, data: bytes) -> Image.Image:
        """``.enso`` bytes → a PIL image (``RGB``, ``L`` or ``RGBA``, as encoded)."""
        return to_pil(self.decode_tensor(data))


def _as_bytes(data) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, (str, os.PathLike)):
        raise TypeError(f"decode takes the file's bytes, not a path; pass Path({str(data)!r}).read_bytes()")
    raise TypeError(f"decode takes .enso bytes, not {type(data).__name__}")


def load(name_or_folder: str | Path = DEFAULT_CODEC) -> ImageCodec:
    """A shipped codec by name (``mean_scale_cc``, the default; ``mean_scale``; ``mean_scale_msssim``)
    or a trained or exported folder (``compress train``'s run folder or its ``export/``)."""
    return ImageCodec(Codec.load(name_or_folder))
