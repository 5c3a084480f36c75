"""A translator's generators as ONNX files: ``translate export NAME_OR_RUN --onnx -o DIR``.

One file per direction the translator has, ``a2b.onnx`` (domain A → B, e.g. horse → zebra) and
``b2a.onnx``, each:

    input ``image`` (B, 3, H, W) float32 RGB in [0, 1] → output ``image_out`` (B, 3, H, W) float32
    in [0, 1] (the generator works in [-1, 1]; the mapping to and from it is inside the graph).

H and W must be multiples of the generator's ``stride`` (4 for the ResNet and mobile generators,
2^num_downs for the U-Net; ``onnx.json`` records it): pad other sizes by reflection at the bottom
and right and crop the output back, as :func:`translate.apply.apply_generator` does
(:func:`translate.apply.reflect_pad_to`). Batch, height and width are dynamic; the whole image
runs at once (the command line's tiling of large images and upsampling of tiny ones are not in
the graph). ``DIR/onnx.json`` holds the source, the stride and each file's measured difference
from PyTorch in onnxruntime.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from shared.onnx_export import Network, write_onnx_files

from .apply import WEIGHTS_DIR, load_translator
from .models.translator import Translator, to_signed, to_unit

FILES = {"ab": "a2b.onnx", "ba": "b2a.onnx"}


class UnitGenerator(nn.Module):
    """A generator on [0, 1] images: (B, 3, H, W) in [0, 1] → (B, 3, H, W) in [0, 1]."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return to_unit(self.generator(to_signed(image)))


def load_source(source: str | Path) -> Translator:
    """A translator by shipped name (``translate/weights/NAME``, e.g. ``horse2zebra``; a shipped
    name wins over a folder of that name, which ``./NAME`` reaches), run folder or export folder."""
    if isinstance(source, str) and (WEIGHTS_DIR / source / "model.json").is_file():
        return load_translator(None, source)
    return load_translator(Path(source))


def export_translator_onnx(source: str | Path, out: str | Path, force: bool = False) -> dict[str, float]:
    """Write one ONNX file per direction of the translator ``source`` and ``onnx.json`` into
    ``out`` (see the module docstring); returns each file's max abs difference from PyTorch,
    measured in onnxruntime on a second input size."""
    translator = load_source(source).cpu().float().eval()
    s = translator.stride
    gen = torch.Generator().manual_seed(0)
    image = lambda b, h, w: torch.rand(b, 3, h, w, generator=gen)  # noqa: E731
    axes = {0: "batch", 2: "height", 3: "width"}
    side = max(s, 64 // s * s)  # at least 64 px: a ResNet's 7×7 reflection padding needs room at the bottleneck too
    networks = [
        Network(FILES[d], UnitGenerator(translator.generator(d)), (image(2, side, 2 * side),), (image(1, 2 * side, side),),
                ("image",), ("image_out",), {"image": axes, "image_out": axes},
                {"direction": d, "inputs": {"image": f"(B, 3, H, W) RGB in [0, 1], H and W multiples of {s} (reflect-pad others)"},
                 "outputs": {"image_out": "(B, 3, H, W) RGB in [0, 1]"}})
        for d in translator.directions
    ]
    manifest = {"source": str(source), "model": translator.registry_name, "stride": s, "directions": list(translator.directions)}
    return write_onnx_files(out, networks, manifest, force)
