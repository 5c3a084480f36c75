"""The options of ``compress``'s commands other than ``train``: typed, checked, and made into flags.

Each command's options are a dataclass that library callers build directly and the command line
builds from its flags (:func:`shared.config.add_config_args`; a field ``target_bpp`` is the flag
``--target-bpp``):

* :class:`EncodeOptions` for :func:`compress.io.encode_files` (``compress encode``),
* :class:`DecodeOptions` for :func:`compress.io.decode_files` (``compress decode``),
* :class:`DemoOptions` for :func:`compress.demo.run_demo` (``compress demo``),
* :class:`EvalOptions` for :func:`compress.evaluate.evaluate` (``compress eval``),
* :class:`ThreadOptions`, the ``threads`` every one of them has, alone for ``export`` and ``import-compressai``.

A value out of range is a ``ValueError`` (:class:`shared.errors.ConfigError`) naming the field;
:func:`options_from_args` turns it into the command line's one-line ``UserError``. Inputs, outputs and
``--force`` stay arguments of the functions that do the work.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TypeVar

from shared.compute_options import ThreadOptions
from shared.config import add_config_args, config_from_args
from shared.errors import ConfigError, UserError

from . import classical
from .codec import DEFAULT_CODEC

O = TypeVar("O", bound="ThreadOptions")

#: every codec ``compress eval`` knows: the learned one and the classical ones
ALL_CODECS: tuple[str, ...] = ("ours",) + classical.NAMES
#: ``ours``'s files decoded by a perceptual decoder (not run unless named)
PERCEPTUAL = "ours-perceptual"
MODEL_HELP = "a shipped codec name (it wins over a folder of that name: write ./NAME for the folder) or a trained run folder"


def _check_unit(name: str, value: float, hint: str = "") -> None:
    if not 0 <= value <= 1:  # NaN fails too
        raise ConfigError(f"{name} must be in [0, 1], not {value}{hint}")


def _check_steps(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} takes a number of steps (0 or more), not {value!r}")


@dataclass
class EncodeOptions(ThreadOptions):
    """How each image is coded: at ``quality`` (None: 0.5) or as the largest file within ``target_bpp``, not both."""

    model: str = field(default=DEFAULT_CODEC, metadata={"help": MODEL_HELP})
    quality: float | None = field(default=None, metadata={"help": "0 (smallest) .. 1 (best); None: 0.5, unless target_bpp is given"})
    target_bpp: float | None = field(default=None, metadata={"help": "instead of a quality: the largest file at or under this many bits per pixel"})
    refine: int = field(default=0, metadata={
        "help": "gradient steps on each image's latent for a lower rate-distortion cost (slower encoding; compress.refine)"})
    safeguard: bool = field(default=False, metadata={
        "help": "write an AVIF or JPEG file inside the .enso instead when it is less than half the learned file's size at its PSNR "
                "(noise, grain, dithering; slower encoding: see compress.safeguard)"})

    def __post_init__(self):
        super().__post_init__()
        if self.quality is not None and self.target_bpp is not None:
            raise ConfigError("give quality or target_bpp, not both")
        if self.target_bpp is not None and not 0 < self.target_bpp < math.inf:
            raise ConfigError(f"target_bpp must be a positive number of bits per pixel, not {self.target_bpp}")
        if self.quality is not None:
            _check_unit("quality", self.quality)
        _check_steps("refine", self.refine)

    @property
    def coding_quality(self) -> float:
        """The quality to code at without ``target_bpp``: ``quality``, or 0.5 when it is None."""
        return 0.5 if self.quality is None else self.quality


@dataclass
class DecodeOptions(ThreadOptions):
    """Which codec and which of its decoders turn each file back into an image."""

    model: str | None = field(default=None, metadata={"help": "codec to decode with; None: the one named in the file"})
    decoder: str = field(default="mse", metadata={
        "help": "mse (the codec's own decoder), perceptual (the shipped perceptual decoder of the file's codec: "
                "sharper textures, lower PSNR) or the folder of a perceptual decoder"})
    realism: float = field(default=1.0, metadata={"help": "with a perceptual decoder: blend r · perceptual + (1 − r) · mse, r in [0, 1]"})

    def __post_init__(self):
        super().__post_init__()
        _check_unit("realism", self.realism, "; 0 is the mse decoder, 1 the perceptual one")


@dataclass
class DemoOptions(ThreadOptions):
    """The demo's photo (None: the bundled one), codec and quality."""

    image: str | None = field(default=None, metadata={"help": "another photo instead of the bundled one"})
    model: str = field(default=DEFAULT_CODEC, metadata={"help": MODEL_HELP})
    quality: float = field(default=0.5, metadata={"help": "0 (smallest) .. 1 (best)"})

    def __post_init__(self):
        super().__post_init__()
        _check_unit("quality", self.quality)


@dataclass
class EvalOptions(ThreadOptions):
    """What ``compress eval`` measures: ``codecs`` on the images of ``data`` (the first ``limit``).

    ``models`` are the learned codecs for ``ours`` (empty: the default codec); ``qualities`` overrides
    codecs' settings ({codec: its settings}); ``threads`` also caps the classical encoders' threads
    (AVIF, JPEG XL; 0: torch's count), so its default is 1, for timings comparable across codecs.
    """

    threads: int = field(default=1, metadata={"help": "torch and encoder threads; 0: chosen by the work"})
    data: str | None = field(default=None, metadata={"help": "folder of test images; None: $ENSO_DATA/kodak"})
    codecs: tuple[str, ...] = field(default=ALL_CODECS, metadata={
        "help": f"codecs to run, from {','.join(ALL_CODECS + (PERCEPTUAL,))}, comma- or space-separated "
                f"({PERCEPTUAL}: ours's files decoded with a perceptual decoder)"})
    models: tuple[str, ...] = field(default=(), metadata={
        "help": f"the learned codec for 'ours': {MODEL_HELP} (default {DEFAULT_CODEC}); repeat it to compare several, named ours:NAME"})
    qualities: dict[str, tuple[float, ...]] = field(default_factory=dict, metadata={
        "help": "override a codec's quality settings (repeatable); ours takes values in [0, 1]"})
    refine: int = field(default=0, metadata={"help": "latent refinement steps for ours (see compress encode --refine)"})
    safeguard: bool = field(default=False, metadata={"help": "ours encodes with the classical safeguard (see compress encode --safeguard)"})
    perceptual_decoder: str | None = field(default=None, metadata={
        "help": f"the perceptual decoder {PERCEPTUAL} decodes ours's files with: an exported folder; None: the shipped one"})
    perceptual_metrics: bool = field(default=False, metadata={
        "help": "also KID on 256² patches, the high-frequency measure, a paired KID bootstrap between the decoders, "
                "BD-rate at equal LPIPS and crops_lowest_rate.png (slower: Inception features of every patch)"})
    inception_weights: str | None = field(default=None, metadata={"help": "Inception weights for KID; None: see shared.metrics.distribution"})
    limit: int | None = field(default=None, metadata={"help": "evaluate the first N images only"})
    html: int = field(default=8, metadata={"help": "images on OUT/index.html: sliders of ensō against the original, JPEG and AVIF at its size (0: none)"})
    lpips_weights: str | None = field(default=None, metadata={"help": "AlexNet weights for LPIPS; None: see shared.metrics.perceptual"})
    allow_download: bool | None = field(default=None, metadata={"help": "let LPIPS download torchvision's AlexNet weights if none are found"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    def __post_init__(self):
        super().__post_init__()
        codecs = (self.codecs,) if isinstance(self.codecs, str) else self.codecs
        self.codecs = tuple(n.strip() for text in codecs for n in text.split(",") if n.strip())
        if not self.codecs:
            raise ConfigError("codecs names no codec")
        self.models = (str(self.models),) if isinstance(self.models, (str, Path)) else tuple(map(str, self.models))
        self.qualities = {str(k): tuple(float(q) for q in v) for k, v in dict(self.qualities).items()}
        _check_steps("refine", self.refine)
        if self.limit is not None and (isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1):
            raise ConfigError(f"limit must be at least 1 image, not {self.limit!r}")
        if isinstance(self.html, bool) or not isinstance(self.html, int) or self.html < 0:
            raise ConfigError(f"html must be 0 (no page) or a number of images, not {self.html!r}")


def options_from_args(cls: type[O], ns: argparse.Namespace) -> O:
    """``cls`` from the flags :func:`shared.config.add_config_args` added; a ``ValueError`` becomes the one-line ``UserError``."""
    try:
        return config_from_args(cls, ns)
    except ValueError as e:
        raise UserError(str(e)) from None


def _help(cls: type, name: str) -> str:
    f = next(f for f in fields(cls) if f.name == name)
    return f.metadata["help"]


def _quality_override(text: str) -> tuple[str, tuple[float, ...]]:
    name, sep, values = text.partition("=")
    try:
        qs = tuple(float(v) for v in values.split(",") if v.strip())
    except ValueError:
        qs = ()
    if not sep or not qs:
        raise argparse.ArgumentTypeError(f"expected CODEC=Q1,Q2,... (e.g. jpeg=10,30,50), got {text!r}")
    return name.strip(), qs


def add_eval_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``compress eval`` flags: :class:`EvalOptions`'s (``--model`` and ``--quality`` repeatable) and ``-o``."""
    parser.add_argument("-o", "--out", type=Path, required=True, help="output folder (CSV, JSON, PNG plots, BD-rate table)")
    add_config_args(parser, EvalOptions, skip=("models", "qualities"))
    parser.add_argument("--model", dest="models", action="append", default=argparse.SUPPRESS, metavar="NAME_OR_FOLDER", help=_help(EvalOptions, "models"))
    parser.add_argument("--quality", dest="qualities", type=_quality_override, action="append", default=argparse.SUPPRESS, metavar="CODEC=Q1,Q2,...",
                        help=_help(EvalOptions, "qualities"))
    return parser

