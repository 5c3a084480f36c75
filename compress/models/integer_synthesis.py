"""The hyper-synthesis h_s for coding, in exact integer arithmetic (after Ballé et al. 2019,
"Integer networks for data compression with latent-variable models").

The decoder must derive exactly the encoder's Gaussian parameters from ẑ, or decoding fails.
Floating-point convolutions sum in an order that depends on the kernel, the thread count and the
CPU, so their results can differ in the last bit between machines. Integer products summed in
int32 have no such drift: every order gives the same sum.

Each layer's input is quantised to fixed point with one scale per tensor (its peak over
:data:`PEAK`, computed from exact values, so encoder and decoder agree) and split into two int8
tensors, ``SPLIT·hi + lo``; the weights to int8 with one scale per output channel. A layer is
then one int8 × int8 → int32 matrix product over both halves (``torch._int_mm``; about 10× faster
here than the float64 product it replaces; a transposed convolution as its phase convolution),
and elementwise float64 rescaling, bias and LeakyReLU (correctly rounded, so the same everywhere).

Every int8 operand lies in [-63, 63]. CPUs without VNNI multiply int8 in pairs summed in int16,
with one operand shifted to uint8 (at most 191): 2·191·63 < 2¹⁵, so no kernel can saturate, and
the int32 sums stay below 2¹⁶·2592 (the longest product, h_s's last layer; a phase kernel's
zero taps add nothing), far from overflow.

Quantisation moves the predicted scales and means slightly: against float64 h_s with the
42,000-step weights, 8 Kodak images at 3 qualities coded to 0.08 % fewer bytes (noise either way);
the distortion does not change.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import phase_geometry, phase_kernels

#: largest magnitude of any int8 operand (see the module docstring)
LEVELS = 63
#: activations are SPLIT·hi + lo with hi, lo in [-LEVELS, LEVELS]: 13-bit magnitudes up to PEAK
SPLIT = 2 * LEVELS + 1
PEAK = LEVELS * SPLIT + LEVELS


def _weight_grid(w: torch.Tensor, out_dim: int, top: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Float weights → (integers in [-top, top] as float64, float64 scale per output channel along
    ``out_dim``): each channel's largest magnitude maps to ``top``."""
    w = w.detach().double()
    reduce = [d for d in range(w.ndim) if d != out_dim]
    scale = w.abs().amax(dim=reduce, keepdim=True).clamp_min(1e-30) / top
    return torch.round(w / scale), scale.flatten()


def quantize_weight(w: torch.Tensor, out_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Float weights → (int8 weights, float64 scale per output channel along ``out_dim``)."""
    q, scale = _weight_grid(w, out_dim, LEVELS)
    return q.to(torch.int8), scale


def split_weight(w: torch.Tensor, out_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Float weights → (int8 (2, *w.shape): halves ``SPLIT·hi + lo`` of a 13-bit value, each in
    [-LEVELS, LEVELS]; float64 scale per output channel along ``out_dim``): the weights to the
    activations' precision, for networks whose predictions 7-bit weights coarsen (the context)."""
    q, scale = _weight_grid(w, out_dim, PEAK)
    hi = torch.round(q / SPLIT)
    return torch.stack([hi, q - SPLIT * hi]).to(torch.int8), scale


def quantize_activation(x: torch.Tensor) -> tuple[torch.Tensor, float]:
    """float64 tensor, any shape → (halves, scale): int8 (2, *x.shape) in [-LEVELS, LEVELS] with
    x ≈ (SPLIT·halves[0] + halves[1])·scale, a 13-bit fixed-point value per element (one scale
    per tensor, its peak over :data:`PEAK`)."""
    if x.numel():
        low, high = x.aminmax()
        peak = max(-float(low), float(high))
    else:
        peak = 0.0
    scale = peak / PEAK if peak > 0 else 1.0
    q = (x / scale).round_().clamp_(-PEAK, PEAK).float()  # integers below 2^13: exact in float32
    # |q/SPLIT - hi| <= 1/2, so |lo| <= LEVELS. q/SPLIT is never within 1/(2·SPLIT) of a tie (SPLIT
    # is odd), far beyond float32's error, so hi is the float64 quotient's rounding too.
    hi = (q / SPLIT).round_()
    halves = torch.empty((2, *x.shape), dtype=torch.int8)
    halves[0].copy_(hi)
    halves[1].copy_(q.sub_(hi, alpha=SPLIT))  # exact: integers below 2^13
    return halves, scale


def _row_major(t: torch.Tensor) -> torch.Tensor:
    """``t`` (M, N) if its strides are exactly (N, 1), else a row-major copy: a view with a size-1
    dimension passes ``is_contiguous`` with strides that ``_int_mm`` misreads."""
    if t.stride() == (t.shape[1], 1):
        return t
    return torch.empty_like(t, memory_format=torch.contiguous_format).copy_(t)


def _int_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact int8 (M, K) @ int8 (K, N) → int32 (M, N)."""
    return torch._int_mm(_row_major(a), _row_major(b))


def int_conv2d(a: torch.Tensor, w: torch.Tensor, stride: int, shuffle: int = 1) -> torch.Tensor:
    """Channels-last int8 (B, H, W, C), already padded, ⋆ int8 weights laid out (k, k, C, O) → the
    exact int32 sums (B, H', W', O), as ``F.conv2d`` without padding (in channels-last order); the
    batch shares one matrix product, each row one output position (faster here than channels-first:
    the patches copy in runs of C, and ``_int_mm`` took 4.8 ms for h_s's last layer in this shape
    against 6.7 ms transposed).
    With ``shuffle`` s > 1 the output channels are interleaved as ``F.pixel_shuffle(·, s)`` does,
    in the same copy: (B, s·H', s·W', O/s²)."""
    k, O = w.shape[0], w.shape[-1]
    B = a.shape[0]
    cols = a.unfold(1, k, stride).unfold(2, k, stride)  # (B, H', W', C, k, k)
    H, W = cols.shape[1:3]
    sums = _int_matmul(cols.permute(0, 1, 2, 4, 5, 3).reshape(B * H * W, -1), w.reshape(-1, O))
    s = shuffle
    if s == 1:
        return sums.view(B, H, W, O)
    return sums.view(B, H, W, O // (s * s), s, s).permute(0, 1, 4, 2, 5, 3).reshape(B, H * s, W * s, O // (s * s))


class IntConv:
    """One convolution or transposed convolution on channels-last int8 inputs (B, H, W, C) with int8
    weights → its exact int32 sums (B, H', W', O), as ``F.conv2d`` / ``F.conv_transpose2d`` (bias
    left out). A transposed layer runs as its phase convolution
    (:func:`~compress.models.base.phase_geometry`: one dense product and an interleave, several
    times faster here than summing the taps of the transposed form, and the same integers)."""

    def __init__(self, layer: nn.Conv2d | nn.ConvTranspose2d, weight: torch.Tensor):
        """``weight``: int8, the layer's weight shape; the layer gives the geometry."""
        if isinstance(layer, nn.ConvTranspose2d):
            taps, valid, (lo, hi) = phase_geometry(layer)
            weight = phase_kernels(weight, taps, valid)
            self.pad, self.stride, self.shuffle = (0, 0, -lo, hi, -lo, hi), 1, layer.stride[0]
        else:
            p = layer.padding[0]
            self.pad, self.stride, self.shuffle = (0, 0, p, p, p, p), layer.stride[0], 1
        self.weight = weight.permute(2, 3, 1, 0).contiguous()  # (O, C, k, k) → (k, k, C, O)

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        return int_conv2d(F.pad(a, self.pad), self.weight, self.stride, self.shuffle)


class IntegerSynthesis:
    """Exact coding-time copy of a trained h_s: ``nn.Sequential`` of Conv2d / ConvTranspose2d
    layers (transposed ones as :func:`~compress.models.base.phase_geometry` accepts), each
    optionally followed by a LeakyReLU."""

    def __init__(self, h_s: nn.Sequential, precise_last: bool = False):
        """``precise_last``: the last convolution's weights at 13 bits, as two int8 halves
        (:func:`split_weight`; twice its products), the others at 7 bits."""
        self.layers: list[dict] = []
        last = max(i for i, layer in enumerate(h_s) if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d))) if precise_last else -1
        for index, layer in enumerate(h_s):
            if isinstance(layer, nn.LeakyReLU) and self.layers and self.layers[-1]["slope"] is None:
                self.layers[-1]["slope"] = layer.negative_slope
            elif (
                isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)) and layer.groups == 1 and layer.dilation == (1, 1)
                and layer.padding_mode == "zeros" and not isinstance(layer.padding, str)
                and len(set(layer.stride)) == 1 and len(set(layer.padding)) == 1 and len(set(layer.kernel_size)) == 1
            ):
                out_dim = 1 if isinstance(layer, nn.ConvTranspose2d) else 0
                split_weights = index == last
                if split_weights:  # both halves as one layer of twice the outputs: one product
                    halves, sw = split_weight(layer.weight, out_dim)
                    w = torch.cat([halves[0], halves[1]], dim=out_dim)
                else:
                    w, sw = quantize_weight(layer.weight, out_dim)
                self.layers.append({
                    "conv": IntConv(layer, w), "scale": sw.view(1, 1, 1, -1), "slope": None, "split": split_weights,
                    "bias": layer.bias.detach().double().view(1, 1, 1, -1),
                })
            else:
                raise ValueError(f"IntegerSynthesis supports convolutions and LeakyReLU, not {layer}")

    def __call__(self, z_hat: torch.Tensor) -> torch.Tensor:
        """ẑ (1, N, h, w) → h_s(ẑ) (1, C, H, W) as float64, computed the same way on every machine
        (in channels-last order: the result is a channels-last view)."""
        x = z_hat.double().permute(0, 2, 3, 1).contiguous()
        for layer in self.layers:
            halves, scale = quantize_activation(x)
            sums = layer["conv"](halves.flatten(0, 1))  # one product for both halves
            # combined in float64 (SPLIT·int32 could overflow int32; every value here is < 2^53: exact)
            n = x.shape[0]
            x = sums[:n].double().mul_(SPLIT).add_(sums[n:])
            if layer["split"]:  # outputs [hi weights | lo weights] → SPLIT·hi + lo (below 2^41: exact)
                O = x.shape[-1] // 2
                x = x[..., :O].mul(SPLIT).add_(x[..., O:])
            x.mul_(scale * layer["scale"]).add_(layer["bias"])
            if layer["slope"] is not None:
                F.leaky_relu_(x, layer["slope"])
        return x.permute(0, 3, 1, 2)
