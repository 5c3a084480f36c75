"""Image-to-image generators: encoder → bottleneck → decoder, as in CycleGAN and GAN Compression.

Generators map images (B, 3, H, W) in **[-1, 1]** to images of the same shape in [-1, 1] (tanh
output), as in the anchor (junyanz/pytorch-CycleGAN-and-pix2pix); the models that own them
(:mod:`translate.models.cyclegan`) convert from and to the [0, 1] of ensō's API. H and W must
divide by the generator's ``stride`` (4 for ResNet and mobile, 2^num_downs for U-Net);
:mod:`translate.apply` pads any image to fit.

* ``resnet``: the anchor's ResnetGenerator: reflection pad + 7×7 conv, two stride-2 3×3 convs,
  ``n_blocks`` residual blocks (reflection padding inside), two upsamplings, 7×7 conv, tanh;
  instance norm and ReLU throughout.
* ``mobile``: the same with GAN Compression's depthwise-separable residual blocks (depthwise 3×3,
  instance norm, pointwise 1×1) at the bottleneck; with a small ``ngf`` the light student.
* ``unet``: the anchor's UnetGenerator: ``num_downs`` stride-2 4×4 convs with skip connections.

``upsample`` chooses transposed convolutions (the anchor) or resize-convolutions (nearest ×2 +
3×3 conv, Odena et al. 2016), which avoid checkerboard artefacts. :func:`gmacs` counts the
multiply–accumulates of a forward pass.
"""
from __future__ import annotations

import copy
from typing import Literal

import torch
from torch import nn

from shared.errors import ConfigError

GeneratorKind = Literal["resnet", "unet", "mobile"]
Upsample = Literal["transposed", "resize_conv"]


def norm(ch: int) -> nn.Module:
    """Instance norm without affine parameters or running statistics (the anchor's ``instance``)."""
    return nn.InstanceNorm2d(ch)


def upsample_conv(cin: int, cout: int, upsample: Upsample, kernel: int = 3) -> nn.Module:
    """×2 upsampling from ``cin`` to ``cout`` channels: a transposed conv (``kernel`` 3: pad 1 and
    output padding 1 as in the ResNet generator; 4: pad 1 as in the U-Net) or nearest ×2 + 3×3 conv."""
    if upsample == "transposed":
        if kernel == 3:
            return nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1)
        return nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)
    if upsample == "resize_conv":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3))
    raise ValueError(f"unknown upsampling {upsample!r}; use transposed or resize_conv")


class ResnetBlock(nn.Module):
    """``x + f(x)``, f = [reflect pad, 3×3 conv, IN, ReLU, reflect pad, 3×3 conv, IN]; (B, ch, H, W) → same."""

    def __init__(self, ch: int):
        super().__init__()
        self.f = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), norm(ch), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), norm(ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.f(x)


def separable_conv(cin: int, cout: int) -> nn.Sequential:
    """GAN Compression's SeparableConv2d: depthwise 3×3 (no padding), instance norm, pointwise 1×1."""
    return nn.Sequential(nn.Conv2d(cin, cin, 3, groups=cin), norm(cin), nn.Conv2d(cin, cout, 1))


class MobileResnetBlock(nn.Module):
    """``x + f(x)`` with depthwise-separable convs: [pad, sep conv, IN, ReLU, pad, sep conv, IN]."""

    def __init__(self, ch: int):
        super().__init__()
        self.f = nn.Sequential(
            nn.ReflectionPad2d(1), separable_conv(ch, ch), norm(ch), nn.ReLU(True),
            nn.ReflectionPad2d(1), separable_conv(ch, ch), norm(ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.f(x)


class ResnetGenerator(nn.Module):
    """(B, channels, H, W) in [-1, 1] → same shape in [-1, 1]; H, W divisible by ``stride`` = 4.

    ``encoder``: 7×7 conv to ``ngf``, then two stride-2 convs to 4·ngf; ``bottleneck``: ``n_blocks``
    residual blocks (dense, or depthwise-separable with ``mobile=True``) at 4·ngf; ``decoder``: two
    ×2 upsamplings back to ``ngf``, 7×7 conv, tanh.
    """

    stride = 4

    def __init__(self, channels: int = 3, ngf: int = 64, n_blocks: int = 9, upsample: Upsample = "transposed", mobile: bool = False):
        super().__init__()
        enc: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(channels, ngf, 7), norm(ngf), nn.ReLU(True)]
        for i in range(2):
            c = ngf * 2**i
            enc += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), norm(2 * c), nn.ReLU(True)]
        self.encoder = nn.Sequential(*enc)
        block = MobileResnetBlock if mobile else ResnetBlock
        self.bottleneck = nn.Sequential(*[block(4 * ngf) for _ in range(n_blocks)])
        dec: list[nn.Module] = []
        for i in range(2):
            c = ngf * 2 ** (2 - i)
            dec += [upsample_conv(c, c // 2, upsample), norm(c // 2), nn.ReLU(True)]
        dec += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, channels, 7), nn.Tanh()]
        self.decoder = nn.Sequential(*dec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.bottleneck(self.encoder(x)))


class UnetBlock(nn.Module):
    """One level of the U-Net: ``x`` (B, outer, H, W) → ``cat(x, up(inner(down(x))))`` (B, 2·outer, H, W);
    the outermost level returns ``up(...)`` (B, outer_out, H, W) through tanh instead."""

    def __init__(self, outer: int, inner: int, sub: nn.Module | None, upsample: Upsample, outermost: bool = False, in_ch: int | None = None):
        super().__init__()
        self.outermost = outermost
        down = nn.Conv2d(in_ch or outer, inner, 4, stride=2, padding=1)
        up_in = inner if sub is None else 2 * inner
        up = upsample_conv(up_in, outer, upsample, kernel=4)
        if outermost:
            layers = [down, sub, nn.ReLU(True), up, nn.Tanh()]
        elif sub is None:  # innermost: no norm on the 1×1 code
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True), up, norm(outer)]
        else:
            layers = [nn.LeakyReLU(0.2, True), down, norm(inner), sub, nn.ReLU(True), up, norm(outer)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """(B, channels, H, W) in [-1, 1] → same shape in [-1, 1]; H, W divisible by ``stride`` = 2^num_downs.

    Widths ngf, 2ngf, 4ngf, then 8ngf for the remaining ``num_downs - 4`` levels (``num_downs`` ≥ 5);
    ``num_downs`` = 8 brings 256 px to 1×1 at the bottleneck (the anchor's ``unet_256``).
    """

    def __init__(self, channels: int = 3, ngf: int = 64, num_downs: int = 8, upsample: Upsample = "transposed"):
        super().__init__()
        if num_downs < 5:
            raise ConfigError(f"a U-Net needs num_downs 5 or more, not {num_downs}")
        self.stride = 2**num_downs
        block = UnetBlock(8 * ngf, 8 * ngf, None, upsample)
        for _ in range(num_downs - 5):
            block = UnetBlock(8 * ngf, 8 * ngf, block, upsample)
        block = UnetBlock(4 * ngf, 8 * ngf, block, upsample)
        block = UnetBlock(2 * ngf, 4 * ngf, block, upsample)
        block = UnetBlock(ngf, 2 * ngf, block, upsample)
        self.net = UnetBlock(channels, ngf, block, upsample, outermost=True, in_ch=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_generator(
    kind: GeneratorKind, ngf: int = 64, n_blocks: int = 9, num_downs: int = 8, upsample: Upsample = "transposed", channels: int = 3
) -> nn.Module:
    """The generator ``kind`` (``n_blocks`` for resnet/mobile, ``num_downs`` for unet); it has a ``stride``."""
    if kind == "resnet":
        return ResnetGenerator(channels, ngf, n_blocks, upsample)
    if kind == "mobile":
        return ResnetGenerator(channels, ngf, n_blocks, upsample, mobile=True)
    if kind == "unet":
        return UnetGenerator(channels, ngf, num_downs, upsample)
    raise ValueError(f"unknown generator {kind!r}; use resnet, unet or mobile")


#: multiply–accumulates of one call of a layer type, from its input and output (as FlopCounterMode counts them)
LAYER_MACS = {
    nn.Conv2d: lambda m, x, y: y.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1],
    nn.ConvTranspose2d: lambda m, x, y: x.numel() * (m.out_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1],
    nn.Linear: lambda m, x, y: y.numel() * m.in_features,
}


@torch.no_grad()
def gmacs(model: nn.Module, size: int | tuple[int, int], channels: int = 3) -> float:
    """Multiply–accumulates (in 10⁹) of one forward pass of ``model`` on a (1, channels, H, W) input.

    Counted per layer as torch's FlopCounterMode counts them (convolutions and linear layers, which
    hold every multiply–accumulate of these generators; a transposed conv counts its real MACs, at
    its input resolution), in a pass of a copy on the ``meta`` device: nothing is computed and
    ``model`` is left as it is. ``size``: H = W, or (H, W).
    """
    h, w = (size, size) if isinstance(size, int) else size
    p = next(model.parameters())
    net = model if p.device.type == "meta" else copy.deepcopy(model).to("meta")
    total = 0

    def count(m: nn.Module, inputs, output) -> None:
        nonlocal total
        total += next(f for t, f in LAYER_MACS.items() if isinstance(m, t))(m, inputs[0], output)

    handles = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, tuple(LAYER_MACS))]
    was_training = net.training
    net.eval()
    try:
        net(torch.zeros(1, channels, h, w, device="meta", dtype=p.dtype))
    finally:
        for handle in handles:
            handle.remove()
        net.train(was_training)
    return total / 1e9
