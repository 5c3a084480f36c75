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
here than the float64 product it replaces), a transposed convolution's taps summed onto its
output grid by int32 adds, and elementwise float64 rescaling, bias and LeakyReLU (correctly
rounded, so the same everywhere).

Every int8 operand lies in [-63, 63]. CPUs without VNNI multiply int8 in pairs summed in int16,
with one operand shifted to uint8 (at most 191): 2·191·63 < 2¹⁵, so no kernel can saturate, and
the int32 sums stay below 2¹⁶·2592 (the largest layer), far from overflow.

Quantisation moves the predicted scales and means slightly: against float64 h_s with the
42,000-step weights, 8 Kodak images at 3 qualities coded to 0.08 % fewer bytes (noise either way);
the distortion does not change.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: largest magnitude of any int8 operand (see the module docstring)
LEVELS = 63
#: activations are SPLIT·hi + lo with hi, lo in [-LEVELS, LEVELS]: 13-bit magnitudes up to PEAK
SPLIT = 2 * LEVELS + 1
PEAK = LEVELS * SPLIT + LEVELS


def quantize_weight(w: torch.Tensor, out_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Float weights → (int8 weights, float64 scale per output channel along ``out_dim``)."""
    w = w.detach().double()
    reduce = [d for d in range(w.ndim) if d != out_dim]
    scale = w.abs().amax(dim=reduce, keepdim=True).clamp_min(1e-30) / LEVELS
    return torch.round(w / scale).to(torch.int8), scale.flatten()


def quantize_activation(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """float64 (1, C, H, W) → (hi, lo, scale): int8 tensors in [-LEVELS, LEVELS] with
    x ≈ (SPLIT·hi + lo)·scale, a 13-bit fixed-point value per element (one scale per tensor, its
    peak over :data:`PEAK`)."""
    peak = float(x.abs().max()) if x.numel() else 0.0
    scale = peak / PEAK if peak > 0 else 1.0
    q = torch.round(x / scale).clamp(-PEAK, PEAK)
    hi = torch.round(q / SPLIT)  # |q/SPLIT - hi| <= 1/2, so |lo| <= LEVELS
    return hi.to(torch.int8), (q - SPLIT * hi).to(torch.int8), scale


def _row_major(t: torch.Tensor) -> torch.Tensor:
    """``t`` (M, N) if its strides are exactly (N, 1), else a row-major copy: a view with a size-1
    dimension passes ``is_contiguous`` with strides that ``_int_mm`` misreads."""
    if t.stride() == (t.shape[1], 1):
        return t
    return torch.empty_like(t, memory_format=torch.contiguous_format).copy_(t)


def _int_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact int8 (M, K) @ int8 (K, N) → int32 (M, N)."""
    return torch._int_mm(_row_major(a), _row_major(b))


def int_conv2d(a: torch.Tensor, w: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
    """int8 (B, C, H, W) ⋆ int8 (O, C, k, k) → the exact int32 sums (B, O, H', W'), as ``F.conv2d``;
    the batch shares one matrix product."""
    O, C, k, _ = w.shape
    B = a.shape[0]
    cols = F.pad(a, (padding,) * 4).unfold(2, k, stride).unfold(3, k, stride)  # (B, C, H', W', k, k)
    H, W = cols.shape[2:4]
    cols = cols.permute(1, 4, 5, 0, 2, 3).reshape(C * k * k, B * H * W)
    return _int_matmul(w.reshape(O, C * k * k), cols).view(O, B, H, W).transpose(0, 1)


def int_conv_transpose2d(a: torch.Tensor, w: torch.Tensor, stride: int, padding: int, output_padding: int) -> torch.Tensor:
    """int8 (B, C, H, W) transposed-convolved with int8 (C, O, k, k) → the exact int32 sums
    (B, O, H', W'), H' = (H - 1)·stride - 2·padding + k + output_padding, as ``F.conv_transpose2d``;
    the batch shares one matrix product."""
    C, O, k, _ = w.shape
    B, _, H, W = a.shape
    s = stride
    cols = a.transpose(0, 1).reshape(C, B * H * W)
    taps = _int_matmul(w.permute(2, 3, 1, 0).reshape(k * k * O, C), cols).view(k, k, O, B, H, W).transpose(2, 3)
    Ho = (H - 1) * s - 2 * padding + k + output_padding
    Wo = (W - 1) * s - 2 * padding + k + output_padding
    # Input pixel i's tap t lands on output row s·i + t - padding: on phase t % s of the output
    # grid, at coarse row i + t // s. Summing each phase on its own coarse grid keeps every add
    # unit-stride (integer adds: exact in any order); one copy interleaves the phases.
    Hc = max(H + (k - 1) // s, -(-(padding + Ho) // s))
    Wc = max(W + (k - 1) // s, -(-(padding + Wo) // s))
    phases = taps.new_zeros(s, s, B, O, Hc, Wc)
    for i in range(k):
        for j in range(k):
            phases[i % s, j % s, :, :, i // s : i // s + H, j // s : j // s + W].add_(taps[i, j])
    full = phases.permute(2, 3, 4, 0, 5, 1).reshape(B, O, Hc * s, Wc * s)
    return full[:, :, padding : padding + Ho, padding : padding + Wo]


class IntegerSynthesis:
    """Exact coding-time copy of a trained h_s: ``nn.Sequential`` of Conv2d / ConvTranspose2d
    layers, each optionally followed by a LeakyReLU."""

    def __init__(self, h_s: nn.Sequential):
        self.layers: list[dict] = []
        for layer in h_s:
            if isinstance(layer, nn.LeakyReLU) and self.layers and self.layers[-1]["slope"] is None:
                self.layers[-1]["slope"] = layer.negative_slope
            elif (
                isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)) and layer.groups == 1 and layer.dilation == (1, 1)
                and layer.padding_mode == "zeros" and not isinstance(layer.padding, str)
                and len(set(layer.stride)) == 1 and len(set(layer.padding)) == 1 and len(set(layer.kernel_size)) == 1
            ):
                transposed = isinstance(layer, nn.ConvTranspose2d)
                w, sw = quantize_weight(layer.weight, 1 if transposed else 0)
                if transposed:  # stored so that the matrix int_conv_transpose2d takes, w.permute(2, 3, 1, 0), is row-major
                    w = w.permute(2, 3, 1, 0).contiguous().permute(3, 2, 0, 1)
                self.layers.append({
                    "transposed": transposed, "w": w, "scale": sw.view(1, -1, 1, 1), "slope": None,
                    "bias": layer.bias.detach().double().view(1, -1, 1, 1), "stride": layer.stride[0],
                    "padding": layer.padding[0], "output_padding": layer.output_padding[0] if transposed else 0,
                })
            else:
                raise ValueError(f"IntegerSynthesis supports convolutions and LeakyReLU, not {layer}")

    def _sums(self, layer: dict, a: torch.Tensor) -> torch.Tensor:
        if layer["transposed"]:
            return int_conv_transpose2d(a, layer["w"], layer["stride"], layer["padding"], layer["output_padding"])
        return int_conv2d(a, layer["w"], layer["stride"], layer["padding"])

    def __call__(self, z_hat: torch.Tensor) -> torch.Tensor:
        """ẑ (1, N, h, w) → h_s(ẑ) as float64, computed the same way on every machine."""
        x = z_hat.double()
        for layer in self.layers:
            hi, lo, scale = quantize_activation(x)
            sums = self._sums(layer, torch.cat([hi, lo]))  # one product for both halves
            # combined in float64 (SPLIT·int32 could overflow int32; every value here is < 2^53: exact)
            n = hi.shape[0]
            sums = SPLIT * sums[:n].double() + sums[n:].double()
            x = sums * (scale * layer["scale"]) + layer["bias"]
            if layer["slope"] is not None:
                x = F.leaky_relu(x, layer["slope"])
        return x
