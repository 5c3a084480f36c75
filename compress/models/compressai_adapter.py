"""Every use of CompressAI's private internals, in one place.

ensō codes its files with CompressAI's entropy models and rANS coder but reaches past their public
methods in a few places: the medians of an ``EntropyBottleneck``, the likelihoods of
values placed by the caller (without CompressAI's own quantisation), and the coder's tables. Those
are private attributes, free to move in any CompressAI release, and the bytes of every ``.enso``
file depend on them; so they are read only here, and :func:`check_compressai` (run by the tests on
real CompressAI objects) names any that moved. The ``compressai`` dependency is pinned to the minor
version the format fixtures were checked against (``pyproject.toml``).
"""
from __future__ import annotations

import torch
from compressai.entropy_models import EntropyBottleneck, EntropyModel, GaussianConditional

#: the private attributes used here, by the CompressAI class that has them
PRIVATE_ATTRIBUTES: dict[type, tuple[str, ...]] = {
    EntropyModel: ("_quantized_cdf", "_cdf_length", "_offset", "_check_cdf_size", "_check_cdf_length", "_check_offsets_size"),
    EntropyBottleneck: ("_get_medians", "_likelihood"),
    GaussianConditional: ("_likelihood",),
}
#: the coder tables' buffer names in an entropy model's state dict (computed by ``update()``, so a
#: loader may drop them and rebuild them)
TABLE_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length")


def tables_built(model: EntropyModel) -> bool:
    """Whether ``update()`` has built ``model``'s coder tables (a freshly loaded model has empty ones)."""
    return model._quantized_cdf.numel() > 0


def check_compressai(models: list[EntropyModel]) -> None:
    """Raise ``RuntimeError`` naming every private attribute of :data:`PRIVATE_ATTRIBUTES` that one
    of ``models`` (real CompressAI objects, one of each class in the table at least) lacks."""
    missing = [f"{cls.__name__}.{name}" for m in models for cls, names in PRIVATE_ATTRIBUTES.items()
               if isinstance(m, cls) for name in names if not hasattr(m, name)]
    if missing:
        import compressai

        raise RuntimeError(f"compressai {compressai.__version__} has no {', '.join(dict.fromkeys(missing))}: "
                           "ensō's adapter (compress/models/compressai_adapter.py) must follow it before .enso files can be trusted")


def medians(bottleneck: EntropyBottleneck) -> torch.Tensor:
    """The per-channel medians (C, 1, 1) of ``bottleneck``'s densities, about which coding rounds
    (float32, with gradient to the bottleneck's quantiles)."""
    return bottleneck._get_medians()


def bottleneck_likelihood_raw(bottleneck: EntropyBottleneck, values: torch.Tensor) -> torch.Tensor:
    """Likelihoods, not lower-bounded, of ``values`` (C, 1, n): channel c under density c, each value
    taken as the centre of a unit bin, without quantising them."""
    likelihood, _, _ = bottleneck._likelihood(values)
    return likelihood


def gaussian_likelihood_raw(gc: GaussianConditional, values: torch.Tensor, scales: torch.Tensor, means: torch.Tensor | None) -> torch.Tensor:
    """Likelihoods, not lower-bounded, of ``values`` (any shape) under Gaussians of ``scales`` and
    ``means`` (None: zero) of the same shape, each value the centre of a unit bin, without quantising."""
    return gc._likelihood(values, scales, means)


def coder_table_tensors(model: EntropyModel) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(quantised CDFs (n, L) int32, CDF lengths (n,) int32, offsets (n,) int32) of ``model``, the
    tables its rANS coder codes with, after CompressAI's own checks that they were built
    (``update()`` was run); those raise ``ValueError``."""
    model._check_cdf_size()
    model._check_cdf_length()
    model._check_offsets_size()
    return model._quantized_cdf, model._cdf_length, model._offset
