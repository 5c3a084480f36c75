"""Device and precision: where a run computes and in which number format.

``--precision auto`` picks bf16 autocast plus channels_last on hardware with native bf16 (CPUs
with AVX512-BF16 or AMX, CUDA GPUs of compute capability 8.0 and up) and fp32 elsewhere; on a
CPU it keeps fp32 for models without convolutions, where bf16 casts cost more than they save.
Parameters, optimiser state and losses stay fp32; autocast runs the convolutions and matrix
products in bf16.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from .errors import UserError


def resolve_device(name: str) -> torch.device:
    """``auto`` → cuda when available, else cpu; ``cuda`` without a GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu")
    return torch.device(name)


def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bf16 natively (AVX512-BF16 or AMX), so autocast pays off."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, c, lambda: False)() for c in checks)


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_native_bf16()


@dataclass(frozen=True)
class Precision:
    """The resolved numeric setup of a run."""

    device: torch.device
    dtype: torch.dtype | None  # autocast dtype, or None for plain fp32
    channels_last: bool

    @property
    def name(self) -> str:
        return "fp32" if self.dtype is None else "bf16"

    def autocast(self):
        """Context manager: bf16 autocast when enabled, else nothing."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def to_device(self, x):
        """Move a tensor (or tuple/list/dict of tensors) to the device; 4-D float tensors go channels_last."""
        if isinstance(x, torch.Tensor):
            x = x.to(self.device, non_blocking=True)
            if self.channels_last and x.ndim == 4 and x.is_floating_point():
                x = x.contiguous(memory_format=torch.channels_last)
            return x
        if isinstance(x, dict):
            return {k: self.to_device(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return type(x)(self.to_device(v) for v in x)
        return x


def resolve_precision(precision: str, device: torch.device, conv_model: bool = True, channels_last: bool = True) -> Precision:
    """``fp32`` | ``bf16`` | ``auto`` on ``device``; channels_last goes with bf16 for conv models
    that do not opt out (``channels_last=False``: models whose instance norms would convert every
    activation back to NCHW, where the layout changes cost more than channels_last saves)."""
    if precision not in ("fp32", "bf16", "auto"):
        raise UserError(f"--precision must be fp32, bf16 or auto, not {precision!r}")
    if precision == "bf16" and not bf16_supported(device) and device.type == "cuda":
        raise UserError("--precision bf16: this GPU has no bf16 support; use --precision fp32")
    # auto on a CPU: bf16 pays off for convolutions; small MLPs run faster in fp32 (measured)
    auto_bf16 = bf16_supported(device) and (conv_model or device.type == "cuda")
    use_bf16 = precision == "bf16" or (precision == "auto" and auto_bf16)
    return Precision(device, torch.bfloat16 if use_bf16 else None, use_bf16 and conv_model and channels_last)

