"""One image's latents to bytes and back with CompressAI's rANS coder and entropy models.

CompressAI's ``compress`` / ``decompress`` convert the coder's tables to Python lists on every call
and build the decoded tensor from a list; these functions give the same bytes and values with the
tables converted once (:func:`coder_tables`) and the values passed through numpy. The bottleneck's
encoder also returns the decoded latent without decoding it (the hyperprior's encoder needs ẑ).
"""
from __future__ import annotations

import numpy as np
import torch
from compressai.ans import RansDecoder, RansEncoder
from compressai.entropy_models import EntropyBottleneck, EntropyModel, GaussianConditional

from .compressai_adapter import coder_table_tensors, medians


def coder_tables(model: EntropyModel) -> tuple[list, list, list]:
    """(CDFs, CDF lengths, offsets) of CompressAI's ``model`` (a ``GaussianConditional`` or
    ``EntropyBottleneck``) as the Python lists its rANS coder takes, converted again only when the
    tables change (1.4 ms a call here). Each CDF is cut to its length: the coder reads no further,
    and the padded table (64 × 3,133 entries for the shipped codecs' y, against 27,256 used) took
    3 ms of every call to pass in."""
    tensors = coder_table_tensors(model)
    cached = model.__dict__.get("_enso_tables")  # (copies of the tensors, their lists); the tables are small
    if cached is None or not all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(cached[0], tensors)):
        quantized_cdf, cdf_length, offset = tensors
        lengths = cdf_length.reshape(-1).int().tolist()
        cdfs = [row[:n] for row, n in zip(quantized_cdf.tolist(), lengths)]
        lists = (cdfs, lengths, offset.reshape(-1).int().tolist())
        model.__dict__["_enso_tables"] = cached = (tuple(t.clone() for t in tensors), lists)
    return cached[1]


def _int_sequence(t: torch.Tensor) -> memoryview:
    """A tensor's values, flattened, as the int32 sequence the coder's bindings read element by element
    (a memoryview of its numpy array, which keeps the values alive: no Python list is built first,
    1–2.5 ms less per call on a Kodak image's y than ``tolist``)."""
    return memoryview(t.reshape(-1).int().numpy())


def rans_encode(model: EntropyModel, symbols: torch.Tensor, indexes: torch.Tensor) -> bytes:
    """Integer ``symbols`` under ``model``'s CDFs numbered by ``indexes`` (same shape) → CompressAI's
    rANS bytes, as its ``compress`` codes one image: the values pass as memoryviews
    (:func:`_int_sequence`), the tables come from :func:`coder_tables`."""
    if symbols.shape != indexes.shape:  # the coder itself would read past the shorter list
        raise ValueError(f"symbols {tuple(symbols.shape)} and indexes {tuple(indexes.shape)} differ in shape")
    return RansEncoder().encode_with_indexes(_int_sequence(symbols), _int_sequence(indexes), *coder_tables(model))


class DamagedStream(ValueError):
    """A byte string that cannot be a stream of the rANS coder (:func:`is_rans_stream`)."""


def is_rans_stream(string: bytes) -> bool:
    """Whether ``string`` can be a stream of CompressAI's 64-bit rANS coder: whole 32-bit words, at
    least two, and a first state (two little-endian words) in [2³¹, 2⁶³), the range its encoder
    keeps the state in. An emptied or oddly cut section fails here, before any decoding."""
    if len(string) < 8 or len(string) % 4:
        return False
    return 1 << 31 <= int.from_bytes(string[:8], "little") < 1 << 63


def guard_bytes(symbols: int, string: bytes) -> int:
    """Zero bytes to append to ``string`` before decoding ``symbols`` symbols from it.

    CompressAI's decoder does not know where its input ends: on a damaged or crafted string (a
    section emptied or cut short, or a header claiming a larger image, behind a re-sealed CRC) it
    reads on past the end, up to 4 bytes per symbol, and escape-coded values can read more
    (at most 16 bytes per input byte in a fuzz of crafted strings, 0xFF runs the worst; the guard
    allows twice that); reading unmapped memory killed the process. A valid string is never read
    past its end, so the zeros change no valid decode; with them the coder stays inside its buffer
    and a damaged file decodes to some image instead (the CRC catches accidental damage before
    this). About 1 ms per Kodak decode."""
    return 4 * symbols + 32 * len(string) + 65536


def rans_decode(model: EntropyModel, string: bytes, indexes: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`rans_encode`: bytes → int32 symbols shaped like ``indexes``, the string
    padded first (:func:`guard_bytes`). The decoded list becomes a tensor through numpy, not
    ``torch.tensor`` on a Python list (the slowest step of CompressAI's decompress in a profile of a
    Kodak image)."""
    if indexes.numel() and not is_rans_stream(string):
        raise DamagedStream(f"a {len(string)}-byte section is no rANS stream (too short, not whole 32-bit words, or an invalid first state)")
    padded = string + bytes(guard_bytes(indexes.numel(), string))
    values = RansDecoder().decode_with_indexes(padded, _int_sequence(indexes), *coder_tables(model))
    return torch.from_numpy(np.fromiter(values, dtype=np.int32, count=len(values))).reshape(indexes.shape)


class RansStream:
    """One rANS string (:func:`rans_encode` of several parts' symbols, concatenated) decoded a part
    at a time, as a context model needs (each part's CDF indexes depend on the parts before it):
    the same values as one :func:`rans_decode` over all indexes. The string is checked and padded
    as :func:`rans_decode` does, for ``symbols`` symbols in all."""

    def __init__(self, model: EntropyModel, string: bytes, symbols: int):
        if symbols and not is_rans_stream(string):
            raise DamagedStream(f"a {len(string)}-byte section is no rANS stream (too short, not whole 32-bit words, or an invalid first state)")
        self.model, self.left = model, symbols
        self.decoder = RansDecoder()
        self.decoder.set_stream(string + bytes(guard_bytes(symbols, string)))

    def decode(self, indexes: torch.Tensor) -> torch.Tensor:
        """The next ``indexes.numel()`` symbols → int32, shaped like ``indexes``."""
        if indexes.numel() > self.left:  # the guard covers only the symbols announced
            raise ValueError(f"{indexes.numel()} more symbols asked of a stream with {self.left} left")
        self.left -= indexes.numel()
        values = self.decoder.decode_stream(_int_sequence(indexes), *coder_tables(self.model))
        return torch.from_numpy(np.fromiter(values, dtype=np.int32, count=len(values))).reshape(indexes.shape)


def encode_gaussian(gc: GaussianConditional, y: torch.Tensor, indexes: torch.Tensor, means: torch.Tensor | None) -> bytes:
    """``gc.compress(y.double(), indexes, means=means)[0]`` for one image (y (1, M, h, w), indexes
    int32, means float64 or None): the same bytes, through :func:`rans_encode`."""
    y = y.double()
    return rans_encode(gc, torch.round(y - means if means is not None else y), indexes)


def decode_gaussian(gc: GaussianConditional, string: bytes, indexes: torch.Tensor, means: torch.Tensor | None) -> torch.Tensor:
    """``gc.decompress([string], indexes, means=means)`` for one image (indexes (1, M, h, w) int32,
    means float64 or None) → ŷ (1, M, h, w) float64 (float32 without means), through :func:`rans_decode`."""
    return gc.dequantize(rans_decode(gc, string, indexes), means)


def _channel_indexes(bottleneck: EntropyBottleneck, size: tuple[int, int]) -> torch.Tensor:
    """Each element's CDF in a (1, C, h, w) latent under ``bottleneck``: its channel."""
    C = coder_table_tensors(bottleneck)[0].shape[0]
    return torch.arange(C, dtype=torch.int32).view(1, C, 1, 1).expand(1, C, *size)


def encode_bottleneck(bottleneck: EntropyBottleneck, v: torch.Tensor) -> tuple[bytes, torch.Tensor]:
    """One image's latent ``v`` (1, C, h, w) float32 → (``bottleneck.compress(v)[0]``, the same bytes,
    and the v̂ that decoding them gives, ``bottleneck.decompress``'s output, computed without
    decoding): v rounded about the medians in CompressAI's float32 operations."""
    if v.ndim != 4 or v.shape[0] != 1:
        raise ValueError(f"encode_bottleneck codes one image's latent (1, C, h, w), not {tuple(v.shape)}")
    centres = medians(bottleneck).detach().reshape(1, -1, 1, 1)
    symbols = torch.round(v - centres).int()
    return rans_encode(bottleneck, symbols, _channel_indexes(bottleneck, v.shape[-2:])), symbols.float() + centres


def decode_bottleneck(bottleneck: EntropyBottleneck, string: bytes, size: tuple[int, int]) -> torch.Tensor:
    """``bottleneck.decompress([string], size)``: bytes → v̂ (1, C, *size) float32."""
    centres = medians(bottleneck).detach().reshape(1, -1, 1, 1)
    return rans_decode(bottleneck, string, _channel_indexes(bottleneck, size)).float() + centres
