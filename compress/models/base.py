"""What every ensō codec shares: the analysis/synthesis transforms, gain units, and the R–D loss.

A codec maps an image x (B, 3, H, W) in [0, 1] (H, W divisible by 64) to a latent y = g_a(x) of
M channels at 1/16 resolution, entropy-codes round(y) under a learned model, and decodes
x̂ = g_s(ŷ). Subclasses supply the entropy model: :meth:`GainedCodec.entropy` for training
(likelihoods under CompressAI's additive-noise proxy for rounding; with ``rate_input`` "round" or
"annealed", :meth:`GainedCodec.placed_entropy` instead, at y rounded as coded or relaxed; g_s sees either the same noisy y or, by default, y rounded as
when coding with a straight-through gradient, Minnen & Singh 2020) and
:meth:`~GainedCodec.compress_latent` / :meth:`~GainedCodec.decompress_latent` for real bitstreams.

Variable rate (Cui et al. 2021, gain units): ``lambdas`` trade-offs train at once, each with a
learned per-channel gain on y and inverse gain before g_s; a quality q in [0, 1] interpolates
the log-gains between neighbouring levels, so one model covers the whole trained rate range.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from compressai.layers import GDN
from compressai.models.base import CompressionModel
from compressai.ops import quantize_ste
from torch import nn
from torch.nn import functional as F

from shared.errors import ConfigError
from shared.model import TrainableModel

from .compressai_adapter import bottleneck_likelihood_raw

#: CompressAI's λ for its qualities 1..6 (MSE); our levels span them
DEFAULT_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483)


@dataclass
class CodecConfig:
    N: int = field(default=128, metadata={"help": "channels of the transforms"})
    M: int = field(default=192, metadata={"help": "channels of the latent y"})
    lambdas: tuple[float, ...] = field(default=DEFAULT_LAMBDAS, metadata={"help": "rate-distortion trade-offs trained at once"})
    distortion: Literal["mse", "ms-ssim"] = field(default="mse", metadata={"help": "ms-ssim: use λ about 100x larger"})
    aux_lr: float = 1e-3
    decoder_input: Literal["round", "noise"] = field(
        default="round",
        metadata={"help": "what g_s sees in training: round(y - mean) + mean with a straight-through gradient (as when coding) "
                          "or the rate term's sample (y + uniform noise under --rate-input noise)"},
    )
    rate_input: Literal["noise", "round", "annealed"] = field(
        default="noise",
        metadata={"help": "where the rate term evaluates the likelihoods in training: at y + uniform noise (CompressAI's proxy), "
                          "at y rounded as when coding with a straight-through gradient (the bits the file pays), or (annealed) "
                          "at y relaxed to a Gumbel-softmax sample between its two grid points at temperature --anneal-tau "
                          "(as compress encode --refine optimises a latent; for fine-tuning a trained codec)"},
    )
    anneal_tau: float = field(default=0.3, metadata={"help": "temperature of rate_input=annealed (towards 0: rounding)"})
    train_only: Literal["all", "transforms", "context"] = field(
        default="all",
        metadata={"help": "transforms: train g_a, g_s and the gains only, keeping the hyperprior and entropy models as initialised "
                          "(a variant of a trained codec, e.g. for MS-SSIM, that shares its entropy model and ships only its transforms); "
                          "context: train a context model's own networks only, on the rate alone (mean_scale_cc from --init mean_scale)"},
    )


def round_about(y: torch.Tensor, offset: torch.Tensor | float) -> torch.Tensor:
    """y rounded to the integer grid shifted by ``offset`` (a mean or median), as coding rounds it;
    the gradient passes straight through."""
    return quantize_ste(y - offset) + offset


def annealed_round(u: torch.Tensor, tau: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """u relaxed towards floor(u) or floor(u) + 1: a two-way Gumbel-softmax sample at temperature
    ``tau`` whose logits, −atanh(distance)/tau, favour the nearer point (Yang et al. 2020); as tau → 0
    it becomes rounding. Differentiable in u."""
    low = torch.floor(u)
    eps = 1e-5
    logit_low = -torch.atanh((u - low).clamp(eps, 1 - eps)) / tau
    logit_high = -torch.atanh((low + 1 - u).clamp(eps, 1 - eps)) / tau
    uniform = torch.rand(u.shape, generator=generator, device=u.device).clamp(eps, 1 - eps)
    logistic = uniform.log() - (-uniform).log1p()  # the difference of two Gumbel samples
    return low + torch.sigmoid((logit_high - logit_low + logistic) / tau)


def place(v: torch.Tensor, centre: torch.Tensor | float, relax, hold_centre: bool = False) -> torch.Tensor:
    """``relax(v − centre) + centre``: ``relax`` = ``quantize_ste`` rounds about the centre as coding
    does (straight-through), :func:`annealed_round` relaxes; ``hold_centre`` keeps the gradient
    from flowing into the centre."""
    if hold_centre and torch.is_tensor(centre):
        centre = centre.detach()
    return relax(v - centre) + centre


def bottleneck_likelihood(bottleneck, z_hat: torch.Tensor) -> torch.Tensor:
    """Likelihoods (B, C, h, w), lower-bounded, of values ``z_hat`` (B, C, h, w) under CompressAI's
    ``EntropyBottleneck`` ``bottleneck`` (one density per channel), without its quantisation: the
    caller decides where they lie (e.g. rounded about the medians as coded, :func:`round_about`)."""
    B, C = z_hat.shape[:2]
    likelihood = bottleneck_likelihood_raw(bottleneck, z_hat.transpose(0, 1).reshape(C, 1, -1))
    return bottleneck.likelihood_lower_bound(likelihood).reshape(C, B, *z_hat.shape[2:]).transpose(0, 1)


def conv(cin: int, cout: int, k: int = 5, s: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=s, padding=k // 2)


def deconv(cin: int, cout: int, k: int = 5, s: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, k, stride=s, padding=k // 2, output_padding=s - 1)


class InPlaceGDN(GDN):
    """CompressAI's GDN (x / sqrt(β + γ·x²)) or inverse GDN (x · sqrt(β + γ·x²)), same parameters and
    result; without autograd it computes in place, allocating two activation-sized tensors fewer
    per layer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return super().forward(x)
        C = x.shape[1]
        beta = self.beta_reparam(self.beta)
        gamma = self.gamma_reparam(self.gamma).reshape(C, C, 1, 1)
        if self.inverse and x.dtype == torch.float32 and not torch.is_autocast_enabled(x.device.type) and not torch.onnx.is_in_onnx_export():
            # fp32 1×1 convolutions may sum in an order that depends on the thread count (measured on
            # AVX2 oneDNN: 1.9e-6 apart, enough to flip output pixels); summed in float64 and rounded
            # to float32, the decoder's result does not depend on it
            norm = F.conv2d(torch.square(x).double(), gamma.double(), beta.double()).sqrt_().float()
            return norm.mul_(x)
        norm = F.conv2d(torch.square(x), gamma, beta)  # the same values as x * x, in about half the time here
        norm = norm.sqrt_() if self.inverse else norm.rsqrt_()
        return norm.mul_(x) if norm.dtype == x.dtype else x * norm  # (autocast: x may be fp32, norm bf16)


def phase_geometry(deconv: nn.ConvTranspose2d) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """How a ``ConvTranspose2d`` of stride s becomes s² ordinary convolutions, one per output phase:
    (taps (s, K), valid (s, K), window (lo, hi)). Output row s·u + r takes input row u + d,
    d ∈ [lo, hi] (K = hi - lo + 1 rows), through tap ``taps[r, d - lo]`` where ``valid``. Raises
    ``ValueError`` unless the layer is square, ungrouped, undilated and its output exactly s times
    its input (``kernel + output_padding - 2·padding == stride``: CompressAI's and ensō's
    upsampling layers, 5, 2, 2, 1)."""
    if not isinstance(deconv, nn.ConvTranspose2d):
        raise ValueError(f"a phase convolution needs an nn.ConvTranspose2d, not {type(deconv).__name__}")
    (s, s2), (k, k2), (p, p2), (op, op2) = deconv.stride, deconv.kernel_size, deconv.padding, deconv.output_padding
    if (s, k, p, op) != (s2, k2, p2, op2) or deconv.groups != 1 or deconv.dilation != (1, 1) or k + op - 2 * p != s:
        raise ValueError(f"a phase convolution needs a square, ungrouped, undilated layer with output = stride × input, not {deconv}")
    lo, hi = -((k - 1 - p) // s), (s - 1 + p) // s
    t = torch.arange(s)[:, None] + p - s * torch.arange(lo, hi + 1)[None, :]  # tap t = r + p - s·d
    return t.clamp(0, k - 1), (t >= 0) & (t < k), (lo, hi)


def phase_kernels(weight: torch.Tensor, taps: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """A transposed convolution's ``weight`` (C_in, C_out, k, k), any dtype, → the (C_out·s², C_in, K, K)
    kernels of its phase convolution (:func:`phase_geometry`), channel c·s² + r_h·s + r_w for output
    phase (r_h, r_w); taps that reach no output are zero."""
    s, K = taps.shape
    g = weight[:, :, taps[:, None, :, None], taps[None, :, None, :]]  # (C_in, C_out, s, s, K, K)
    g = g * (valid[:, None, :, None] & valid[None, :, None, :]).to(weight.dtype)
    return g.permute(1, 2, 3, 0, 4, 5).reshape(weight.shape[1] * s * s, weight.shape[0], K, K)


class PhaseConvTranspose2d(nn.Module):
    """A ``ConvTranspose2d`` of stride s computed as one ordinary convolution with s² output
    channels per output channel (one per phase of the output grid, :func:`phase_geometry`),
    interleaved by ``pixel_shuffle``: the same products summed in another order, and dense
    kernels, which oneDNN runs much faster than a transposed convolution when there are few output
    channels (g_s's last layer, N → 3; ``scripts/bench_codec.py`` times the decoder that uses it).
    It shares the wrapped layer's parameters (the phase kernels are rebuilt on each call, so they
    follow the weights).

    (B, C_in, H, W) → (B, C_out, s·H, s·W).
    """

    def __init__(self, deconv: nn.ConvTranspose2d):
        super().__init__()
        taps, valid, self.window = phase_geometry(deconv)
        self.deconv, self.stride = deconv, deconv.stride[0]
        self.register_buffer("taps", taps, persistent=False)
        self.register_buffer("valid", valid, persistent=False)

    def phase_weight(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The phase kernels (:func:`phase_kernels`) and the bias, repeated per phase."""
        weight = phase_kernels(self.deconv.weight, self.taps, self.valid)
        bias = self.deconv.bias.repeat_interleave(self.stride**2) if self.deconv.bias is not None else None
        return weight, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.phase_weight()
        lo, hi = self.window
        if -lo == hi:
            y = F.conv2d(x, weight, bias, padding=hi)
        else:  # a window off centre: pad each side by its own amount
            y = F.conv2d(F.pad(x, (-lo, hi, -lo, hi)), weight, bias)
        return F.pixel_shuffle(y, self.stride)


def analysis(N: int, M: int) -> nn.Sequential:
    """g_a: (B, 3, H, W) → (B, M, H/16, W/16)."""
    return nn.Sequential(conv(3, N), InPlaceGDN(N), conv(N, N), InPlaceGDN(N), conv(N, N), InPlaceGDN(N), conv(N, M))


def synthesis(N: int, M: int) -> nn.Sequential:
    """g_s: (B, M, h, w) → (B, 3, 16h, 16w) (unbounded; clamp to [0, 1] for images)."""
    igdn = lambda: InPlaceGDN(N, inverse=True)  # noqa: E731
    return nn.Sequential(deconv(M, N), igdn(), deconv(N, N), igdn(), deconv(N, N), igdn(), deconv(N, 3))


class GainedCodec(TrainableModel, CompressionModel):
    """Transforms, gains and training for a codec; subclasses add the entropy model."""

    #: bitstream sections the entropy model writes (for the container)
    sections: int = 1

    def __init__(self, config: CodecConfig):
        super().__init__()
        self.config = config
        N, M, L = config.N, config.M, len(config.lambdas)
        self.g_a, self.g_s = analysis(N, M), synthesis(N, M)
        spread = torch.linspace(-0.5, 0.5, L).unsqueeze(1) if L > 1 else torch.zeros(1, 1)
        self.log_gain = nn.Parameter(spread.repeat(1, M).clone())
        self.log_inv_gain = nn.Parameter((-spread).repeat(1, M).clone())
        self.register_buffer("lambdas", torch.tensor(config.lambdas, dtype=torch.float32))

    # -- variable rate ---------------------------------------------------------------------------
    def interpolate_levels(self, values: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Per-level ``values`` (L, ...) at qualities q (B,) in [0, 1] → (B, ...): linear between the
        neighbouring levels; q = k/(L-1) is level k exactly."""
        L = values.shape[0]
        pos = q.float().clamp(0, 1) * (L - 1)
        lo = pos.floor().long().clamp(max=L - 1)
        hi = (lo + 1).clamp(max=L - 1)
        t = (pos - lo.float()).view(-1, *([1] * (values.ndim - 1)))
        return (1 - t) * values[lo] + t * values[hi]

    def gains(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Quality q (B,) in [0, 1] → (gain, inverse gain), each (B, M, 1, 1), log-interpolated between levels."""
        g = self.interpolate_levels(self.log_gain, q)
        ig = self.interpolate_levels(self.log_inv_gain, q)
        return g.exp()[:, :, None, None], ig.exp()[:, :, None, None]

    def quality_lambda(self, quality: float) -> float:
        """λ of a quality in [0, 1], log-interpolated between the trained levels like the gains."""
        return float(self.interpolate_levels(self.lambdas.log(), torch.tensor([quality])).exp())

    def level_quality(self, level: torch.Tensor) -> torch.Tensor:
        return level.float() / max(1, self.log_gain.shape[0] - 1)

    # -- entropy model (subclasses) ----------------------------------------------------------------
    def entropy(self, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Training path: y (B, M, h, w) fp32 → (ŷ, {name: likelihoods})."""
        raise NotImplementedError

    def compress_latent(self, y: torch.Tensor, run=None) -> list[bytes]:
        """y (1, M, h, w) → :attr:`sections` byte strings (deterministic, see the subclass).
        ``run(net, x)``, if given, runs the encoder-only networks (a hyperprior's h_a) in place of
        ``net(x)``, e.g. on the caller's fast path; the decoder never needs their exact output."""
        raise NotImplementedError

    def decompress_latent(self, strings: list[bytes], size: tuple[int, int]) -> torch.Tensor:
        """Byte strings + latent size (h, w) → ŷ (1, M, h, w) fp32."""
        raise NotImplementedError

    def placed_entropy(self, y: torch.Tensor, relax, hold_centre: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor | float]:
        """y (B, M, h, w) placed about its coded centre by :func:`place` (any hyper-latent rounded
        as coded, straight-through) → (ŷ, {name: likelihoods of the placed values}, the centre):
        with ``relax=quantize_ste`` the bits the file pays, up to the coder's tables."""
        raise NotImplementedError

    def decoder_input(self, y: torch.Tensor, y_noisy: torch.Tensor, offset: torch.Tensor | float) -> torch.Tensor:
        """ŷ for g_s in training: ``y_noisy`` (the rate term's sample: y + U(-½, ½), or y relaxed
        under ``rate_input="annealed"``) under ``decoder_input="noise"``, else y
        rounded about ``offset`` (the coded mean or median) exactly as :meth:`compress_latent` rounds
        it, with the gradient passed straight through."""
        if self.config.decoder_input == "noise" or not self.training:
            return y_noisy
        return round_about(y, offset)

    def training_rounding(self):
        """How this training step places y about its centre (mean or median) for the rate term:
        None under ``rate_input="noise"`` (CompressAI's additive noise) or when not training, else
        a map of y − centre: straight-through rounding (``"round"``) or the annealed relaxation
        (``"annealed"``, :func:`annealed_round` at ``anneal_tau``)."""
        if not self.training or self.config.rate_input == "noise":
            return None
        if self.config.rate_input == "round":
            return quantize_ste
        tau = self.config.anneal_tau
        return lambda u: annealed_round(u, tau)

    # -- the CompressAI protocol -----------------------------------------------------------------
    def latent(self, x: torch.Tensor, q: torch.Tensor | float = 1.0) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """The encoder half of :meth:`forward`: (ŷ for g_s, {name: likelihoods}, inverse gain (B, M, 1, 1))."""
        if not torch.is_tensor(q):
            q = torch.full((x.shape[0],), float(q), device=x.device)
        gain, inv_gain = self.gains(q)
        y = self.g_a(x).float() * gain
        with torch.autocast(x.device.type, enabled=False):
            relax = self.training_rounding()
            if relax is None:
                y_hat, likelihoods = self.entropy(y)
            else:
                y_relaxed, likelihoods, centre = self.placed_entropy(y, relax)
                y_hat = self.decoder_input(y, y_relaxed, centre)
        return y_hat, likelihoods, inv_gain

    def forward(self, x: torch.Tensor, q: torch.Tensor | float = 1.0) -> dict:
        """``{"x_hat", "likelihoods": {...}}`` at quality ``q`` (a float or (B,) tensor)."""
        y_hat, likelihoods, inv_gain = self.latent(x, q)
        x_hat = self.g_s(y_hat * inv_gain)
        return {"x_hat": x_hat.float(), "likelihoods": likelihoods}

    # -- training ---------------------------------------------------------------------------------
    def distortion(self, x_hat: torch.Tensor, x: torch.Tensor, mse: torch.Tensor | None = None) -> torch.Tensor:
        """Per-image distortion (B,) that λ weighs: 255²·MSE, or 1 − MS-SSIM for ``distortion="ms-ssim"``
        (x̂ clamped to [0, 1]); ``mse`` (B,) when the caller has it already."""
        if self.config.distortion == "mse":
            return 255.0**2 * (mse if mse is not None else (x_hat - x).pow(2).flatten(1).mean(1))
        from pytorch_msssim import ms_ssim

        # fp32 even under autocast: SSIM's variances are differences of nearly equal means,
        # which bf16's 8-bit mantissa would cancel away
        with torch.autocast(x.device.type, enabled=False):
            return 1.0 - ms_ssim(x_hat.float().clamp(0, 1), x.float(), data_range=1.0, size_average=False)

    def is_transform(self, name: str) -> bool:
        """Whether parameter ``name`` belongs to the transforms or gains (what ``train_only="transforms"`` trains)."""
        return name.split(".")[0] in ("g_a", "g_s", "log_gain", "log_inv_gain")

    def is_context(self, name: str) -> bool:
        """Whether parameter ``name`` belongs to a context model (what ``train_only="context"`` trains; none here)."""
        return False

    def optimizers(self, lr: float, weight_decay: float = 0.0) -> dict[str, torch.optim.Optimizer]:
        """``main`` (everything but the bottleneck's quantiles) and ``aux`` (the quantiles); under
        ``train_only="transforms"`` (or ``"context"``) the other parameters are frozen
        (``requires_grad`` off) and only ``main``, over the transforms and gains (or the context
        model), is returned."""
        if self.config.train_only != "all":
            trains = self.is_transform if self.config.train_only == "transforms" else self.is_context
            if not any(trains(n) for n, _ in self.named_parameters()):
                raise ConfigError(f"train_only={self.config.train_only!r}: this codec ({type(self).__name__}) has no such parameters")
            for n, p in self.named_parameters():
                p.requires_grad_(trains(n))
            return {"main": torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)}
        main = [p for n, p in self.named_parameters() if not n.endswith(".quantiles")]
        aux = [p for n, p in self.named_parameters() if n.endswith(".quantiles")]
        return {
            "main": torch.optim.Adam(main, lr=lr, weight_decay=weight_decay),
            "aux": torch.optim.Adam(aux, lr=self.config.aux_lr),
        }

    def training_step(self, batch, optimizer: str) -> dict[str, torch.Tensor]:
        """``main``: λ·D + bpp with a random λ level per image; ``aux``: the bottleneck's quantile loss."""
        if optimizer == "aux":
            return {"loss": self.aux_loss()}
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        B, _, H, W = x.shape
        if self.config.train_only == "context":
            return self.rate_step(x)
        level = torch.randint(0, len(self.config.lambdas), (B,), device=x.device)
        out = self(x, self.level_quality(level))
        bits = sum(torch.log(lik).flatten(1).sum(1) for lik in out["likelihoods"].values()) / -math.log(2)
        bpp = bits / (H * W)
        mse = (out["x_hat"] - x.float()).pow(2).flatten(1).mean(1)
        distortion = self.distortion(out["x_hat"], x.float(), mse)
        loss = (self.lambdas[level] * distortion + bpp).mean()
        psnr = (10 * torch.log10(1.0 / mse.clamp_min(1e-10))).mean()
        logged = {"loss": loss, "bpp": bpp.mean().detach(), "psnr": psnr.detach()}
        if self.config.distortion == "ms-ssim":
            logged["ms_ssim_db"] = (-10 * torch.log10(distortion.detach().clamp_min(1e-10))).mean()
        return logged

    def rate_step(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``train_only="context"``: the transforms are fixed, so only the rate is trained (the coded
        means move ŷ only through rounding, which passes no gradient), at a uniformly random
        quality per image (the whole continuous range); g_s is not run."""
        # (the frozen g_a keeps no activations for backward: none of its parameters requires a gradient)
        _, likelihoods, _ = self.latent(x, torch.rand(x.shape[0], device=x.device))
        bits = sum(torch.log(lik).flatten(1).sum(1) for lik in likelihoods.values()) / -math.log(2)
        bpp = bits / (x.shape[2] * x.shape[3])
        return {"loss": bpp.mean(), "bpp": bpp.mean().detach()}
