"""Encode images to ``.enso`` bytes and decode them back with a trained codec.

:class:`Codec` wraps a hyperprior model for inference:

* any image size (padded to a multiple of 64 by edge replication, cropped back after decoding);
* RGB, grey (coded as RGB, returned as one channel) and RGBA (alpha stored losslessly);
* large images in tiles with overlap, so memory stays bounded and no seams appear: a tile's
  margin covers the transforms' receptive field, so each latent equals the whole-image one;
* determinism: the entropy model's parameters are derived on an exact path (see
  :mod:`compress.models.hyperprior`), so a file decodes identically under any thread count and in
  any process. The large transforms (and the encoder-only h_a) run bf16 + channels_last where the
  CPU has native bf16 (thread-count invariant in oneDNN's channels_last kernels, which the tests check);
* speed: the ``compress`` command keeps freed memory in the process (:mod:`shared.allocator`;
  process-wide, so a :class:`Codec` built in another program leaves that to its caller), so the
  transforms' large activations reuse pages instead of being faulted in anew; the price is a higher
  peak on very large images (``scripts/bench_codec.py --large`` measures both); g_s's last layer
  runs as a phase convolution (:class:`~compress.models.base.PhaseConvTranspose2d`).

Images are float tensors (C, H, W) in [0, 1], C ∈ {1, 3, 4}.
"""
from __future__ import annotations

import json
import zlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from shared.checkpoint import load_exported, tensors_sha256
from shared.errors import UserError
from shared.metrics.image import psnr
from shared.precision import cpu_has_native_bf16
from shared.tiling import tiled

from .container import Header, pack, parse, quality_code
from .safeguard import classical_fallback, decode_classical
from .models.base import PhaseConvTranspose2d
from .models.compressai_adapter import EntropyModel, tables_built
from .models.entropy_coding import DamagedStream

STRIDE = 64  # total downsampling of g_a ∘ h_a
WEIGHTS_DIR = Path(__file__).parent / "weights"
#: the shipped codec that encode, demo and eval use unless told otherwise
DEFAULT_CODEC = "mean_scale_cc"
#: whether :meth:`Codec.encode` runs the classical safeguard unless told (:mod:`compress.safeguard`)
SAFEGUARD = False


def shipped_folders() -> list[Path]:
    """The shipped codecs' weight folders (``compress/weights/*``), by name."""
    return sorted(p for p in WEIGHTS_DIR.iterdir() if (p / "model.json").is_file()) if WEIGHTS_DIR.is_dir() else []


def is_shipped(name: str) -> bool:
    """Whether ``name`` is a shipped codec's plain name (not a path)."""
    return name in {p.name for p in shipped_folders()}


def weights_folder(name_or_path: str | Path) -> Path:
    """A shipped codec's folder by name (``compress/weights/NAME``; a shipped name wins over a
    folder of that name in the working directory, which ``./NAME`` reaches), or the exported/run
    folder given."""
    if isinstance(name_or_path, str) and is_shipped(name_or_path):
        return WEIGHTS_DIR / name_or_path
    path = Path(name_or_path)
    if path.exists():
        return path
    if is_shipped(path.name) and len(path.parts) == 1:  # a shipped name given as a Path, or with a trailing slash
        return WEIGHTS_DIR / path.name
    shipped = ", ".join(p.name for p in shipped_folders()) or "none shipped"
    raise UserError(f"no codec {name_or_path!r}: give a shipped name ({shipped}) or a trained run folder")


def weights_hash(model: torch.nn.Module) -> bytes:
    """First 8 bytes of SHA-256 over the model's state (names, dtypes, shapes, values); a model with
    training-only parts (a perceptual decoder's discriminator) is hashed over what it exports."""
    state = model.state_dict()
    if hasattr(model, "export_parts"):
        parts = set(model.export_parts())
        state = {k: v for k, v in state.items() if k.split(".")[0] in parts}
    return bytes.fromhex(tensors_sha256(state))[:8]


class Codec:
    """A trained codec model ready to encode and decode. Build it with :meth:`load`."""

    tile = 1024  # input pixels per tile side (the 768×512 Kodak images run as one tile)

    def __init__(self, model, fast: bool | None = None):
        self.model = model.cpu().eval()
        if any(isinstance(m, EntropyModel) and not tables_built(m) for m in self.model.modules()):
            self.model.update(force=True)
        self.model_id = model.registry_name
        self.hash = weights_hash(self.model)
        self.fast = cpu_has_native_bf16() if fast is None else fast
        if self.fast:
            for net in (self.model.g_a, self.model.g_s, getattr(self.model, "h_a", None)):
                if net is not None:
                    net.to(memory_format=torch.channels_last)
        # g_s for inference: the same layers, its last (N → 3) transposed convolution run by phases
        self.synthesis = nn.Sequential(*self.model.g_s[:-1], PhaseConvTranspose2d(self.model.g_s[-1]))
        self._perceptual: dict[str, nn.Module] = {}  # perceptual decoders by source, loaded on first use

    @classmethod
    def load(cls, name_or_path: str | Path = DEFAULT_CODEC) -> "Codec":
        """A shipped codec by name (``compress/weights/NAME``) or an exported/run folder by path."""
        return cls(load_exported(weights_folder(name_or_path)))

    @classmethod
    def for_file(cls, header: Header, name: str = "the file") -> "Codec":
        """The shipped codec that wrote a file: the one named by its model id whose weights hash
        matches, else any shipped codec of that architecture whose hash matches (a variant, e.g.
        ``mean_scale_msssim``), else the one named by the model id (whose decode then names the
        mismatch); a model id that names no shipped codec is a :class:`UserError` (it is never
        read as a path)."""
        shipped = shipped_folders()
        named = [p for p in shipped if p.name == header.model_id]  # the file's model id names a shipped codec, never a path
        others = [p for p in shipped if p.name != header.model_id and json.loads((p / "model.json").read_text()).get("name") == header.model_id]
        for folder in named + others:
            codec = cls(load_exported(folder))
            if codec.hash == header.weights_hash:
                return codec
        if not named:
            raise UserError(f"{name} was written by codec {header.model_id!r}, which is not shipped; decode it with --model FOLDER, the weights that wrote it")
        return cls(load_exported(named[0]))

    # -- transforms -------------------------------------------------------------------------------
    def _net(self, net, x: torch.Tensor) -> torch.Tensor:
        if self.fast:  # the input cast as autocast would cast it for the first convolution, in the same copy as the layout change
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return net(x.to(torch.bfloat16, memory_format=torch.channels_last)).float().contiguous()
        return net(x).float()

    def _gains(self, code: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.gains(torch.tensor([code / 65535.0]))

    # -- encode -----------------------------------------------------------------------------------
    def _prepare(self, img: torch.Tensor) -> tuple[str, torch.Tensor, bytes | None]:
        if img.ndim != 3 or img.shape[0] not in (1, 3, 4):
            raise UserError(f"images must be (C, H, W) with C = 1, 3 or 4 channels, not {tuple(img.shape)}")
        if img.shape[1] < 1 or img.shape[2] < 1:
            raise UserError("the image is empty")
        img = img.float().clamp(0, 1)
        if img.shape[0] == 1:
            return "L", img.expand(3, -1, -1), None
        if img.shape[0] == 4:
            alpha = (img[3] * 255).round().to(torch.uint8).numpy().tobytes()
            return "RGBA", img[:3], zlib.compress(alpha, 9)
        return "RGB", img, None

    @staticmethod
    def _padded(img: torch.Tensor) -> torch.Tensor:
        """RGB (3, H, W) → (1, 3, Hp, Wp): edges replicated to multiples of :data:`STRIDE` (a view
        when there is nothing to pad)."""
        _, H, W = img.shape
        x = img.unsqueeze(0)
        return F.pad(x, (0, -W % STRIDE, 0, -H % STRIDE), mode="replicate") if H % STRIDE or W % STRIDE else x

    @torch.no_grad()
    def analyse(self, img: torch.Tensor) -> torch.Tensor:
        """RGB (3, H, W) → the un-gained latent y (1, M, Hp/16, Wp/16) of the padded image."""
        return tiled(lambda t: self._net(self.model.g_a, t), self._padded(img), self.tile, 64, scale=1 / 16)

    @torch.no_grad()
    def _code(self, y_raw: torch.Tensor, code: int) -> list[bytes]:
        gain, _ = self._gains(code)
        with torch.autocast("cpu", enabled=False):
            return self.model.compress_latent(y_raw * gain, run=self._net)

    def encode(self, img: torch.Tensor, quality: float = 0.5, refine: int = 0, safeguard: bool = SAFEGUARD) -> bytes:
        """Image (C, H, W) in [0, 1] → ``.enso`` bytes at ``quality`` in [0, 1] (higher: more bits);
        ``refine`` > 0 spends that many gradient steps on the latent (:mod:`compress.refine`);
        ``safeguard``: write a classical file instead when one is much smaller at the learned
        file's PSNR (:mod:`compress.safeguard`)."""
        mode, rgb, alpha = self._prepare(img)
        code = quality_code(quality)
        if refine > 0:
            self._check_refinable(rgb)
        y = self.analyse(rgb)
        if refine > 0:
            y = self._refine(rgb, y, code, refine)
        data = self._pack(mode, rgb.shape[1:], code, self._code(y, code), alpha)
        return self._safeguarded(rgb, y, code, data, mode, alpha) if safeguard else data

    @torch.no_grad()
    def estimated_psnr(self, rgb: torch.Tensor, y: torch.Tensor, code: int) -> float:
        """PSNR (dB) of the learned file coding the latent ``y`` of ``rgb`` (3, H, W) in [0, 1] at
        quality ``code``, from the encoder's side: ŷ rounded as the file rounds it but with the float
        entropy model (:meth:`placed_entropy`, as :mod:`compress.refine` costs it), then g_s as decode runs it."""
        from compressai.ops import quantize_ste

        gain, inv_gain = self._gains(code)
        with torch.autocast("cpu", enabled=False):
            y_hat, _, _ = self.model.placed_entropy(y * gain, quantize_ste)
        _, H, W = rgb.shape
        x = tiled(lambda t: self._net(self.synthesis, t), y_hat * inv_gain, self.tile // 16, 8, scale=16)
        rec = x[0, :, :H, :W].clamp(0, 1).mul(255).round().div(255)
        return float(psnr(rgb[None], rec[None]))

    def _safeguarded(self, rgb: torch.Tensor, y: torch.Tensor, code: int, data: bytes, mode: str, alpha: bytes | None) -> bytes:
        """The learned file ``data`` (coding ``y``), or the classical file of ``rgb`` that
        :func:`~compress.safeguard.classical_fallback` finds much smaller at its PSNR."""
        rgb8 = rgb.mul(255).round().div(255)  # what a classical codec sees
        found = classical_fallback(rgb8, len(data), self.estimated_psnr(rgb8, y, code), torch.get_num_threads())
        if found is None:
            return data
        header = Header(mode, self.model_id, self.hash, code, int(rgb.shape[1]), int(rgb.shape[2]), found.coding)
        return pack(header, [found.data] + ([alpha] if alpha is not None else []))

    @staticmethod
    def _check_refinable(rgb: torch.Tensor) -> None:
        from .refine import MAX_PIXELS

        _, H, W = rgb.shape
        padded = (H + -H % STRIDE) * (W + -W % STRIDE)
        if padded > MAX_PIXELS:
            raise UserError(f"--refine works on images up to {MAX_PIXELS / 1e6:.0f} megapixels (padded to multiples of {STRIDE}), "
                            f"this one has {padded / 1e6:.2f}; encode it without --refine")

    def _refine(self, rgb: torch.Tensor, y: torch.Tensor, code: int, steps: int) -> torch.Tensor:
        """The latent ``y`` of ``rgb`` (3, H, W) after ``steps`` steps of :func:`~compress.refine.refine_latent`
        (callers check the size with :meth:`_check_refinable` before any work)."""
        from .refine import refine_latent

        _, H, W = rgb.shape
        return refine_latent(self.model, self._padded(rgb), y, code / 65535.0, steps, lambda v: self._net(self.synthesis, v), size=(H, W))

    def encode_to_bpp(self, img: torch.Tensor, target_bpp: float, iterations: int = 12, refine: int = 0, safeguard: bool = SAFEGUARD) -> bytes:
        """Bisect the quality so the file (header included) is the largest at or under ``target_bpp``;
        ``refine`` > 0 then refines the latent at the quality found, keeping the refined file if it
        still fits; ``safeguard`` as :meth:`encode` takes it, on the file found (a classical file
        replaces it only when smaller, so it fits too)."""
        mode, rgb, alpha = self._prepare(img)
        if refine > 0:
            self._check_refinable(rgb)
        y = self.analyse(rgb)
        pixels = rgb.shape[1] * rgb.shape[2]
        lo, hi, best = 0, 65535, (0, None)
        for _ in range(iterations):
            mid = (lo + hi) // 2
            data = self._pack(mode, rgb.shape[1:], mid, self._code(y, mid), alpha)
            if len(data) * 8 / pixels <= target_bpp:
                best, lo = (mid, data), mid + 1
            else:
                hi = mid - 1
            if lo > hi:
                break
        code, data = best
        if data is None:
            data = self._pack(mode, rgb.shape[1:], 0, self._code(y, 0), alpha)
        if refine > 0:
            y_refined = self._refine(rgb, y, code, refine)
            refined = self._pack(mode, rgb.shape[1:], code, self._code(y_refined, code), alpha)
            if len(refined) * 8 / pixels <= target_bpp or len(refined) <= len(data):
                data, y = refined, y_refined
        return self._safeguarded(rgb, y, code, data, mode, alpha) if safeguard else data

    def _pack(self, mode: str, size, code: int, strings: list[bytes], alpha: bytes | None) -> bytes:
        header = Header(mode, self.model_id, self.hash, code, int(size[0]), int(size[1]))
        return pack(header, strings + ([alpha] if alpha is not None else []))

    # -- decode -----------------------------------------------------------------------------------
    def check(self, header: Header, sections: list[bytes], name: str = "input") -> None:
        """Refuse (:class:`UserError`) a parsed file this codec did not write or whose sections do not fit it."""
        if header.model_id != self.model_id:
            raise UserError(f"{name} was encoded with codec {header.model_id!r}; decode it with --model {header.model_id}")
        if header.weights_hash != self.hash:
            raise UserError(f"{name} was encoded with other {header.model_id!r} weights (hash {header.weights_hash.hex()}, these are {self.hash.hex()}); "
                            "without --model, decode picks the shipped codec that wrote it if one did; else pass the weights that did as --model FOLDER")
        expected = (self.model.sections if header.coding == "learned" else 1) + (header.mode == "RGBA")
        if len(sections) != expected:
            raise UserError(f"{name} has {len(sections)} payload sections, expected {expected}; the file is damaged")

    def perceptual_synthesis(self, source: str | Path | None = None) -> nn.Module:
        """g_s of a perceptual decoder of this codec's files (:mod:`compress.models.perceptual_decoder`):
        the shipped ``compress/weights/<codec>_perceptual`` (``source`` None) or an exported/run
        folder. Its other weights must be this codec's (ValueError otherwise, or when none is shipped)."""
        key = str(source)
        if key not in self._perceptual:
            folder = WEIGHTS_DIR / f"{self.model_id}_perceptual" if source is None else weights_folder(source)
            if not (folder / "model.json").is_file() and not (folder / "export" / "model.json").is_file():
                raise ValueError(f"codec {self.model_id!r} has no perceptual decoder ({folder} holds none); decode with the mse decoder")
            other = load_exported(folder)
            if getattr(other, "decodes_for", None) != self.model_id or not hasattr(other, "g_s"):
                raise ValueError(f"{folder} holds no perceptual decoder for {self.model_id!r} files")
            mine, theirs = (
                {k: v for k, v in m.state_dict().items() if not k.startswith(("g_s.", "loss."))} for m in (self.model, other)
            )
            if tensors_sha256(mine) != tensors_sha256(theirs):
                raise ValueError(f"the perceptual decoder in {folder} was trained for other {self.model_id!r} weights than these")
            g_s = other.g_s.cpu().eval()
            if self.fast:
                g_s.to(memory_format=torch.channels_last)
            self._perceptual[key] = nn.Sequential(*g_s[:-1], PhaseConvTranspose2d(g_s[-1]))
        return self._perceptual[key]

    @torch.no_grad()
    def decode(self, data: bytes, name: str = "input", decoder: str = "mse", realism: float = 1.0) -> torch.Tensor:
        """``.enso`` bytes → image (C, H, W) in [0, 1] (C = 3 for RGB, 1 for grey, 4 for RGBA).

        ``decoder``: ``"mse"`` (the codec's own g_s), ``"perceptual"`` (the shipped perceptual
        decoder, :meth:`perceptual_synthesis`) or the folder of one; with a perceptual decoder,
        ``realism`` r in [0, 1] blends the outputs, r · perceptual + (1 − r) · mse (Yan et al. 2022;
        1: the perceptual decoder alone)."""
        if not 0 <= realism <= 1:
            raise ValueError(f"realism must be in [0, 1], not {realism}")
        synthesis = None if decoder == "mse" else self.perceptual_synthesis(None if decoder == "perceptual" else decoder)
        header, sections = parse(data, name)
        self.check(header, sections, name)
        H, W = header.height, header.width
        if header.coding != "learned":  # the safeguard's classical payload (format version 4)
            return self._in_mode(header, sections, decode_classical(sections[0], header.coding, H, W, name), name)
        hp, wp = H + (-H % STRIDE), W + (-W % STRIDE)
        with torch.autocast("cpu", enabled=False):
            try:
                y_hat = self.model.decompress_latent(sections[: self.model.sections], (hp // 16, wp // 16))
            except DamagedStream as e:
                raise UserError(f"{name} is damaged: {e}") from None
        _, inv_gain = self._gains(header.quality_code)
        def run(net):
            return tiled(lambda t: self._net(net, t), y_hat * inv_gain, self.tile // 16, 8, scale=16)

        if synthesis is None or realism == 0:
            x = run(self.synthesis)
        elif realism == 1:
            x = run(synthesis)
        else:
            x = realism * run(synthesis) + (1 - realism) * run(self.synthesis)
        rgb = x[0, :, :H, :W].clamp(0, 1).mul(255).round().div(255)
        return self._in_mode(header, sections, rgb, name)

    @staticmethod
    def _in_mode(header: Header, sections: list[bytes], rgb: torch.Tensor, name: str) -> torch.Tensor:
        """The decoded RGB (3, H, W) on the 8-bit grid → the file's colour mode (grey: the channels'
        mean; RGBA: its alpha section appended, checked)."""
        H, W = header.height, header.width
        if header.mode == "L":
            return rgb.mean(0, keepdim=True).mul(255).round().div(255)
        if header.mode == "RGBA":
            inflate = zlib.decompressobj()
            try:  # at most one byte more than the image needs: a zlib bomb stops there
                alpha = inflate.decompress(sections[-1], H * W + 1)
            except zlib.error:
                raise UserError(f"{name} has a damaged alpha channel") from None
            if len(alpha) != H * W or not inflate.eof:
                raise UserError(f"{name} has an alpha channel of the wrong size; the file is damaged")
            a = torch.frombuffer(bytearray(alpha), dtype=torch.uint8).view(1, H, W).float() / 255
            return torch.cat([rgb, a])
        return rgb
