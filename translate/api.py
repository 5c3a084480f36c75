"""The translator from Python: images of any kind in, translated images out.

>>> import translate
>>> horse2zebra = translate.load()                       # the shipped horse2zebra, or a run folder
>>> zebra = horse2zebra.apply("horse.jpg")               # or a PIL image, NumPy array, tensor
>>> horse = horse2zebra.apply(zebra, direction="ba")     # a PIL image each

:class:`ImageTranslator` is a thin layer over :func:`translate.apply.load_translator` and
:func:`translate.apply.apply_generator` (any size, tiles for large images); inputs go through
:func:`shared.data.images.image_tensor`.
"""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from shared.data.images import image_tensor, to_pil

from .apply import TILE, Direction, apply_generator, load_translator
from .models.translator import Translator


class ImageTranslator:
    """A loaded translator for Python callers (build it with :func:`load`); ``.model`` is the
    :class:`~translate.models.translator.Translator` (its two generators)."""

    def __init__(self, model: Translator):
        self.model = model

    def apply_tensor(self, image, direction: Direction = "ab", tile: int = TILE) -> torch.Tensor:
        """An image (path, PIL image, NumPy array (H, W[, C]) or tensor (C, H, W), uint8 or float in
        [0, 1]; grey is repeated to RGB, alpha dropped) → the translation (3, H, W) in [0, 1];
        ``direction`` ``ab`` (e.g. horse → zebra) or ``ba``; images over ``tile`` px run in tiles."""
        if tile < 64:
            raise ValueError(f"tile must be 64 px or more, not {tile}")
        return apply_generator(self.model.generator(direction), image_tensor(image, rgb=True), tile=tile)

    def apply(self, image, direction: Direction = "ab", tile: int = TILE) -> Image.Image:
        """As :meth:`apply_tensor`, returned as an RGB PIL image."""
        return to_pil(self.apply_tensor(image, direction, tile))


def load(source: str | Path | None = None, dataset: str = "horse2zebra", device: str | torch.device = "cpu") -> ImageTranslator:
    """The translator shipped for ``dataset`` (``source`` None), or a trained one: a run folder of
    ``translate train`` (its ``export/``, else its ``checkpoint.pt``) or an export folder.
    ``FileNotFoundError`` / ``NotADirectoryError`` where there is no model, ``ValueError`` for a
    damaged one or one that is not a translator. The process's CPU threads stay as they are (the
    ``translate`` commands set them: ``--threads``)."""
    return ImageTranslator(load_translator(source, dataset, device))
