"""A codec's transforms as ONNX files: ``compress export NAME_OR_RUN --onnx -o DIR``.

Entropy coding stays in Python (:class:`compress.codec.Codec`); ONNX gets the two large networks,
with the quality's gains inside them, so that a deployment reproduces the latent an encoder codes
and the image a decoder shows. Written to ``DIR``:

``g_a.onnx`` (analysis)
    inputs ``image`` (B, 3, H, W) float32 RGB in [0, 1] and ``quality`` (B,) float32 in [0, 1];
    output ``y`` (B, M, H/16, W/16) float32: g_a(image) × gain(quality), the latent that the
    entropy coder rounds (about its predicted means) and codes. H and W must be multiples of 16;
    to get :class:`~compress.codec.Codec`'s latent, pad the image at the bottom and right by edge
    replication to multiples of 64 (``compress.codec.STRIDE``, which h_a needs), as ``Codec`` does.
``g_s.onnx`` (synthesis)
    inputs ``y_hat`` (B, M, h, w) float32, the decoded latent (``model.decompress_latent``, in the
    gained domain as ``y``), and ``quality`` (B,); output ``image`` (B, 3, 16h, 16w) float32 in
    [0, 1]: g_s(y_hat / gain(quality)) clamped. ``Codec.decode`` then crops to the file's size and
    rounds to 8 bits.
``onnx.json``
    the source codec, M, the strides and each network's inputs, outputs and measured difference
    from PyTorch in onnxruntime.

Height, width and batch are dynamic. ``quality`` is the command line's value; a ``.enso`` file
stores it to 1/65535 (:func:`compress.container.quality_code`), so use ``code / 65535`` to match a
file exactly. The networks are fp32: ``Codec``'s bf16 fast path (where the CPU has native bf16)
gives values within bf16's rounding of these.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from shared.checkpoint import load_exported, model_from_checkpoint
from shared.onnx_export import Network, write_onnx_files

from .codec import STRIDE, weights_folder

LATENT_STRIDE = 16  # g_a's downsampling


class GainedAnalysis(nn.Module):
    """(image (B, 3, H, W) in [0, 1], quality (B,) in [0, 1]) → y = g_a(image) · gain(quality) (B, M, H/16, W/16)."""

    def __init__(self, codec: nn.Module):
        super().__init__()
        self.codec = codec

    def forward(self, image: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        gain, _ = self.codec.gains(quality)
        return self.codec.g_a(image) * gain


class GainedSynthesis(nn.Module):
    """(ŷ (B, M, h, w), quality (B,) in [0, 1]) → g_s(ŷ · inverse gain(quality)) clamped to [0, 1], (B, 3, 16h, 16w)."""

    def __init__(self, codec: nn.Module):
        super().__init__()
        self.codec = codec

    def forward(self, y_hat: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        _, inv_gain = self.codec.gains(quality)
        return self.codec.g_s(y_hat * inv_gain).clamp(0, 1)


def load_codec_model(source: str | Path) -> nn.Module:
    """The codec model (eval, CPU) of a shipped name, an exported folder or a run folder (its
    ``export/``, else its ``checkpoint.pt``)."""
    folder = weights_folder(source)
    if not (folder / "model.json").is_file() and not (folder / "export" / "model.json").is_file() and (folder / "checkpoint.pt").is_file():
        return model_from_checkpoint(folder / "checkpoint.pt").eval()
    return load_exported(folder).eval()


def export_codec_onnx(source: str | Path, out: str | Path, force: bool = False) -> dict[str, float]:
    """Write ``g_a.onnx``, ``g_s.onnx`` and ``onnx.json`` for the codec ``source`` (see the
    module docstring) into ``out``; returns each file's max abs difference from PyTorch, measured
    in onnxruntime on a second input size."""
    model = load_codec_model(source)
    if not all(hasattr(model, name) for name in ("g_a", "g_s", "gains")):
        raise ValueError(f"{source} holds a {getattr(model, 'registry_name', type(model).__name__)!r} model, not a codec with g_a, g_s and gains")
    M = model.log_gain.shape[1]
    gen = torch.Generator().manual_seed(0)
    image = lambda b, h, w: torch.rand(b, 3, h, w, generator=gen)  # noqa: E731
    latent = lambda b, h, w: torch.randn(b, M, h, w, generator=gen) * 4  # noqa: E731
    image_axes, latent_axes = {0: "batch", 2: "height", 3: "width"}, {0: "batch", 2: "latent_height", 3: "latent_width"}
    analysis_axes = {"image": image_axes, "quality": {0: "batch"}, "y": latent_axes}
    synthesis_axes = {"y_hat": latent_axes, "quality": {0: "batch"}, "image": image_axes}
    q2, q1 = torch.tensor([0.25, 0.9]), torch.tensor([0.6])
    networks = [
        Network("g_a.onnx", GainedAnalysis(model), (image(2, 64, 128), q2), (image(1, 128, 64), q1), ("image", "quality"), ("y",), analysis_axes,
                {"inputs": {"image": "(B, 3, H, W) RGB in [0, 1], H and W multiples of 16 (Codec pads to 64 by edge replication)",
                            "quality": "(B,) in [0, 1]"},
                 "outputs": {"y": "(B, M, H/16, W/16): g_a(image) * gain(quality), the latent the entropy coder rounds and codes"}}),
        Network("g_s.onnx", GainedSynthesis(model), (latent(2, 4, 8), q2), (latent(1, 8, 4), q1), ("y_hat", "quality"), ("image",), synthesis_axes,
                {"inputs": {"y_hat": "(B, M, h, w): the decoded latent, gained as y", "quality": "(B,) in [0, 1]"},
                 "outputs": {"image": "(B, 3, 16h, 16w) RGB in [0, 1]: g_s(y_hat / gain(quality)), clamped"}}),
    ]
    manifest = {"source": str(source), "model": model.registry_name, "M": M, "latent_stride": LATENT_STRIDE, "pad_to": STRIDE,
                "entropy_coding": "in Python: compress.codec.Codec (model.compress_latent / decompress_latent)"}
    return write_onnx_files(out, networks, manifest, force)
