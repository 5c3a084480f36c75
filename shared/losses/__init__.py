"""Losses shared by the model families. Adversarial training: :mod:`shared.losses.adversarial`."""
from .adversarial import GanMode, ImagePool, PatchDiscriminator, gan_loss, init_weights

__all__ = ["GanMode", "ImagePool", "PatchDiscriminator", "gan_loss", "init_weights"]
