"""Unpaired image data for translation: two folders, A and B, and where to find them.

:class:`UnpairedImages` serves ``(a, b)`` pairs as the anchor's unaligned data set does: ``a`` is
image ``index`` of A (cycling when B is the larger), ``b`` an independent random image of B; each
is resized to ``load_size``² (bicubic, antialiased, as the anchor's PIL resize), randomly cropped
to ``crop``² and randomly flipped. All randomness comes from the key's item seed, so a run's data
are reproducible.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch.utils.data import Dataset

from shared.data.images import ImageFolder, list_images, random_crop
from shared.data.sampling import item_generator, split_key
from shared.paths import data_dir

from .apply import resize


def held_out(files: list[Path], n: int, seed: int = 0) -> list[Path]:
    """The ``n`` files of ``files`` kept out of training for model selection: a fixed draw (by
    ``seed``) from the sorted list, returned sorted; the same list on every machine. ``n`` must leave
    at least one file to train on (else ``ValueError``)."""
    if n <= 0:
        return []
    files = sorted(files)
    if n >= len(files):
        raise ValueError(f"cannot hold out {n} of {len(files)} images; hold out fewer (val), leaving some to train on")
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed))[:n]
    return sorted(files[i] for i in order.tolist())


class UnpairedImages(Dataset):
    """``ds[(index, item_seed)]`` → ``(a, b)``, each (3, crop, crop) float in [0, 1].

    Length: the larger of the two folders (less the ``exclude``d files: a held-out split). Grey,
    CMYK, palette and RGBA files are converted to RGB (:func:`shared.data.images.load_image`).
    ``cache`` keeps decoded files in memory (uint8). A ``crop`` over ``load_size`` is a ``ValueError``.
    """

    def __init__(
        self, folder_a: str | os.PathLike, folder_b: str | os.PathLike, load_size: int = 286, crop: int = 256, flip: bool = True,
        cache: bool = False, exclude: tuple[list[Path], list[Path]] = ([], []),
    ):
        if crop > load_size:
            raise ValueError(f"the crop size {crop} exceeds the load size {load_size}; crop smaller or load larger")
        self.a = ImageFolder(folder_a, crop, mode="RGB", flip=flip, cache=cache)
        self.b = ImageFolder(folder_b, crop, mode="RGB", flip=flip, cache=cache)
        for folder, skip in zip((self.a, self.b), exclude):
            skip = set(skip)
            folder.files = [f for f in folder.files if f not in skip]
        self.load_size, self.crop, self.flip = load_size, crop, flip

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    def _augment(self, img: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        img = resize(img, (self.load_size, self.load_size), "bicubic")
        return random_crop(img, self.crop, g, self.flip)

    def __getitem__(self, key) -> tuple[torch.Tensor, torch.Tensor]:
        i, seed = split_key(key)
        g = item_generator(seed)
        j = int(torch.randint(0, len(self.b), (), generator=g))
        a = self._augment(self.a.image(i % len(self.a)), g)
        b = self._augment(self.b.image(j), g)
        return a, b


def dataset_folders(
    name: str,
    data: str | os.PathLike | None = None,
    a: str | os.PathLike | None = None,
    b: str | os.PathLike | None = None,
    split: str = "train",
) -> tuple[Path, Path]:
    """The A and B image folders of data set ``name`` for ``split`` (``train`` or ``test``).

    ``a`` and ``b``, when given, are used as they are; otherwise the folders are ``DATA/{split}A``
    and ``DATA/{split}B`` with DATA = ``data`` or ``$ENSO_DATA/name``, the layout of the CycleGAN
    data sets. Only one of ``a`` and ``b`` is a ``ValueError``; missing or image-less folders are
    the one-line :class:`~shared.errors.UserError` of :func:`shared.data.images.list_images`.
    """
    if (a is None) != (b is None):
        raise ValueError("give both folders, a and b (domain A and domain B), or neither")
    if a is not None:
        folders = (Path(a), Path(b))
    else:
        root = data_dir(name, data, option="--data")
        folders = (root / f"{split}A", root / f"{split}B")
    for f in folders:
        list_images(f)  # refuses a missing, non-folder or image-less folder with one line
    return folders
