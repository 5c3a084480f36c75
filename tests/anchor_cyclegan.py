"""The anchor's ResNet generator (junyanz/pytorch-CycleGAN-and-pix2pix, ``models/networks.py``,
``--netG resnet_Nblocks --norm instance``), rebuilt here with its module structure and key names
(one flat ``model`` Sequential; each block's layers in ``conv_block``) for the importer's tests.

(B, 3, H, W) in [-1, 1] → same shape in [-1, 1]; H, W divisible by 4.
"""
from __future__ import annotations

import torch
from torch import nn


def instance_norm(ch: int) -> nn.InstanceNorm2d:
    """The anchor's ``--norm instance``: no affine parameters, no running statistics."""
    return nn.InstanceNorm2d(ch, affine=False, track_running_stats=False)


class AnchorResnetBlock(nn.Module):
    """``x + conv_block(x)``: reflect pad, 3×3 conv, norm, ReLU, [dropout,] reflect pad, 3×3 conv, norm."""

    def __init__(self, dim: int, use_dropout: bool = False):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=True), instance_norm(dim), nn.ReLU(True)]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=True), instance_norm(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class AnchorResnetGenerator(nn.Module):
    """7×7 conv, two stride-2 downsamplings, ``n_blocks`` residual blocks, two transposed-conv
    upsamplings, 7×7 conv, tanh; every conv has a bias (instance norm), as in the anchor."""

    def __init__(self, ngf: int = 64, n_blocks: int = 9, use_dropout: bool = False, input_nc: int = 3, output_nc: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7), instance_norm(ngf), nn.ReLU(True)]
        for mult in (1, 2):
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1), instance_norm(ngf * mult * 2), nn.ReLU(True)]
        layers += [AnchorResnetBlock(ngf * 4, use_dropout) for _ in range(n_blocks)]
        for mult in (4, 2):
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1),
                       instance_norm(ngf * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def with_stale_stats(net: nn.Module) -> dict[str, torch.Tensor]:
    """``net``'s state dict as PyTorch before 0.4 saved it (the anchor's issue #262): every
    InstanceNorm with ``running_mean`` / ``running_var`` / ``num_batches_tracked`` entries."""
    state = dict(net.state_dict())
    for name, module in net.named_modules():
        if isinstance(module, nn.InstanceNorm2d):
            state[f"{name}.running_mean"] = torch.zeros(module.num_features)
            state[f"{name}.running_var"] = torch.ones(module.num_features)
            state[f"{name}.num_batches_tracked"] = torch.tensor(0)
    return state
