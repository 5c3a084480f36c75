"""Device and precision: where a run computes and in which number format.

``--precision auto`` picks bf16 autocast plus channels_last on hardware with native bf16 (CPUs
with AVX512-BF16 or AMX, CUDA GPUs of compute capability 8.0 and up), fp16 autocast with a
gradient scaler on older CUDA GPUs (where bf16 is only emulated, e.g. T4 and V100, and slower
than fp32), and fp32 elsewhere; on a CPU it keeps fp32 for models without convolutions, where
bf16 casts cost more than they save. Parameters, optimiser state and losses stay fp32; autocast
runs the convolutions and matrix products in the narrow format. fp16 needs the trainer's
``torch.amp.GradScaler`` (:attr:`Precision.needs_scaler`): small gradients underflow in fp16.
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


def cuda_capability(device: torch.device) -> tuple[int, int]:
    """(major, minor) compute capability of a CUDA device."""
    return tuple(torch.cuda.get_device_capability(device))


def bf16_supported(device: torch.device) -> bool:
    """True where bf16 runs natively: CUDA compute capability 8.0 and up (not the emulation
    ``torch.cuda.is_bf16_supported`` also counts), or a CPU with :func:`cpu_has_native_bf16`."""
    if device.type == "cuda":
        return cuda_capability(device) >= (8, 0)
    return device.type == "cpu" and cpu_has_native_bf16()


@dataclass(frozen=True)
class Precision:
    """The resolved numeric setup of a run."""

    device: torch.device
    dtype: torch.dtype | None  # autocast dtype (bfloat16 or float16), or None for plain fp32
    channels_last: bool

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    @property
    def needs_scaler(self) -> bool:
        """fp16 autocast: the loss must be scaled (``torch.amp.GradScaler``) so gradients do not underflow."""
        return self.dtype == torch.float16

    def autocast(self):
        """Context manager: bf16 or fp16 autocast when enabled, else nothing."""
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
    """``fp32`` | ``bf16`` | ``fp16`` | ``auto`` on ``device``; channels_last goes with bf16 and fp16
    for conv models that do not opt out (``channels_last=False``: models whose instance norms would
    convert every activation back to NCHW, where the layout changes cost more than channels_last
    saves). ``auto``: bf16 where it is native, fp16 on CUDA GPUs below compute capability 8.0,
    else fp32 (see the module docstring)."""
    if precision not in ("fp32", "bf16", "fp16", "auto"):
        raise UserError(f"--precision must be fp32, bf16, fp16 or auto, not {precision!r}")
    if precision == "bf16" and device.type == "cuda" and not bf16_supported(device):
        major, minor = cuda_capability(device)
        raise UserError(f"--precision bf16: this GPU (compute capability {major}.{minor}) has no native bf16, only a slow emulation; "
                        "use --precision fp16 or fp32")
    if precision == "auto":
        if bf16_supported(device) and (conv_model or device.type == "cuda"):  # on a CPU small MLPs run faster in fp32 (measured)
            precision = "bf16"
        elif device.type == "cuda":
            precision = "fp16"
        else:
            precision = "fp32"
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return Precision(device, dtype, dtype is not None and conv_model and channels_last)
