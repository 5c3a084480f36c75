"""The model contract every trainable model of ensō follows.

A model is an ``nn.Module`` built from one config dataclass (``model.config``) and registered by
name (:mod:`shared.registry`). For training it answers two questions:

* :meth:`TrainableModel.optimizers` → ``{name: optimizer}``, in the order the trainer steps them
  each iteration (one ``"main"`` for an autoencoder; ``"generator"`` then ``"discriminator"`` for a
  GAN; ``"main"`` then ``"aux"`` for a codec with an entropy bottleneck).
* :meth:`TrainableModel.training_step` ``(batch, optimizer_name)`` → ``{"loss": scalar tensor,
  other scalars...}``. The trainer backpropagates ``"loss"`` into that optimizer's parameters and
  logs every entry. Randomness (noise, masks, sampling) must come from torch's global RNG, which
  the trainer seeds and checkpoints, so that resumed runs are exact.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn


class TrainableModel(nn.Module):
    """Base class: one Adam over all parameters, and a batch that is an image tensor or (x, y)."""

    config: Any
    registry_name: str
    #: convolutional models run bf16 autocast on the fast path
    conv: bool = True
    #: ... in channels_last memory format, unless a model opts out (see CycleGAN)
    channels_last: bool = True

    def optimizers(self, lr: float, weight_decay: float = 0.0) -> dict[str, torch.optim.Optimizer]:
        """The optimisers, in stepping order. ``lr`` and ``weight_decay`` come from the train config."""
        return {"main": torch.optim.Adam(self.parameters(), lr=lr, weight_decay=weight_decay)}

    def training_step(self, batch: Any, optimizer: str) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def on_step_end(self, step: int) -> None:
        """Called after every optimiser of a step has stepped (codebook restarts, annealing)."""

    @staticmethod
    def batch_size_of(batch: Any) -> int:
        """Number of examples in a batch (first tensor's leading size)."""
        while isinstance(batch, (list, tuple, dict)):
            batch = next(iter(batch.values())) if isinstance(batch, dict) else batch[0]
        return int(batch.shape[0])
