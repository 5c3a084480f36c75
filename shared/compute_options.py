"""The options every computing command shares: its CPU threads and its torch device (typed configs, shared.config)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .errors import ConfigError


@dataclass
class ThreadOptions:
    """The CPU threads a command computes with (set by :func:`shared.threads.use_threads`)."""

    threads: int = field(default=0, metadata={"help": "torch CPU threads (0: chosen by the size of the work, shared.threads)"})

    def __post_init__(self):
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 0:
            raise ConfigError(f"threads must be 0 (chosen by the work) or a positive count, not {self.threads!r}")


@dataclass
class ComputeOptions(ThreadOptions):
    """Threads and the torch device a command computes on."""

    device: str = field(default="auto", metadata={"help": "auto (a CUDA GPU when there is one), cpu, cuda or cuda:N"})

    def __post_init__(self):
        super().__post_init__()
        try:
            torch.device("cpu" if self.device == "auto" else self.device)
        except (RuntimeError, TypeError):
            raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, not {self.device!r}") from None
