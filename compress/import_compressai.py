"""CompressAI checkpoints → ensō codec folders (``compress import-compressai``).

A checkpoint is a state dict as CompressAI's models save it (``model.state_dict()``, the zoo's
files, ``module.``-prefixed from ``DataParallel``, or CompressAI's training script's
``{"state_dict": ...}``), with or without the entropy models' tables (``update()`` called or not).
Three architectures map onto ensō models with the same layers, so the conversion is exact:

=========================  =====================  ==============================================
``--arch``                 CompressAI class       ensō model
=========================  =====================  ==============================================
``bmshj2018-factorized``   ``FactorizedPrior``    ``factorized`` (same layout and keys)
``bmshj2018-hyperprior``   ``ScaleHyperprior``    ``hyperprior_relu`` (its layout: ReLU, |y|)
``mbt2018-mean``           ``MeanScaleHyperprior`` ``mean_scale`` (same layout and keys)
=========================  =====================  ==============================================

N and M come from the weights' shapes. A CompressAI model has one rate: the ensō model gets one
λ level whose gains are 1 (``log_gain`` = 0), so y is CompressAI's y exactly and ``--quality``
changes nothing. λ and the distortion matter only to ``compress encode --refine``.

The folder holds the weights in float32 (not fp16 as ``compress export`` ships: rounding would
move the decode away from CompressAI's) and the entropy tables, recomputed from the weights by
CompressAI's ``update(force=True)`` (a scale table in the checkpoint is kept). Coding then runs
ensō's way: the integer hyper-synthesis and the nearest-scale CDF index, so the bitstreams are
ensō's, not CompressAI's, and decode to the same ŷ up to the hyper-synthesis's rounding of the means.
"""
from __future__ import annotations

from pathlib import Path

import torch

from shared.checkpoint import export_weights, load_state_dict_file

from .models.compressai_adapter import TABLE_BUFFERS

#: ``--arch`` → the ensō model its weights load into
ARCHS = {"bmshj2018-factorized": "factorized", "bmshj2018-hyperprior": "hyperprior_relu", "mbt2018-mean": "mean_scale"}
#: CompressAI's zoo λ (MSE) for its qualities 1..8; ``--lmbda``'s default is quality 4's
ZOO_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A checkpoint file → its state dict (tensors by name) in CompressAI's current key names
    (through :func:`compressai_keys`); loaded with ``weights_only=True`` (no code in the pickle
    runs). Raises ``ValueError`` for a missing, unreadable or non-state-dict file."""
    raw = load_state_dict_file(path, "give a CompressAI model's saved state_dict")
    return compressai_keys(raw)


def compressai_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Key names of any CompressAI version → the current ones, by CompressAI's own renaming: the
    ``module.`` prefix dropped and the zoo's ``entropy_bottleneck._biases.0`` → ``_bias0``
    (``compressai.zoo.pretrained.load_pretrained``), then ``_bias0`` → ``biases.0``
    (``compressai.models.utils.remap_old_keys``, what its ``load_state_dict`` applies)."""
    from compressai.models.utils import remap_old_keys
    from compressai.zoo.pretrained import load_pretrained

    return dict(remap_old_keys("entropy_bottleneck", load_pretrained(dict(state))))


def detect_arch(state: dict[str, torch.Tensor]) -> str | None:
    """Which of :data:`ARCHS` a state dict's layout is, from its keys and shapes; None for anything else."""
    if not all(k in state for k in ("g_a.0.weight", "g_a.1.beta", "g_a.6.weight", "entropy_bottleneck.quantiles")):
        return None
    if "h_s.4.weight" not in state:
        return "bmshj2018-factorized" if "h_a.0.weight" not in state and "gaussian_conditional.scale_bound" not in state else None
    if any(k.startswith(("context_prediction.", "entropy_parameters.")) for k in state):
        return None  # mbt2018 with its context model
    M, out = state["g_a.6.weight"].shape[0], state["h_s.4.weight"].shape[0]
    if out == 2 * M:
        return "mbt2018-mean"
    if out == M:
        return "bmshj2018-hyperprior"
    return None


def widths(state: dict[str, torch.Tensor]) -> tuple[int, int]:
    """(N, M): the transforms' channels and the latent's, from g_a's first and last weights."""
    return int(state["g_a.0.weight"].shape[0]), int(state["g_a.6.weight"].shape[0])


def convert(state: dict[str, torch.Tensor], arch: str, lmbda: float = ZOO_LAMBDAS[3], distortion: str = "mse", source: str = "the checkpoint"):
    """CompressAI ``state`` (:func:`read_state_dict`) of architecture ``arch`` → the ensō codec
    model (eval mode, entropy tables computed), ready for :class:`compress.codec.Codec`. Raises
    ``ValueError`` when the weights are of another architecture or do not fit it."""
    from shared.registry import build

    if arch not in ARCHS:
        raise ValueError(f"unknown --arch {arch!r}; use one of {', '.join(ARCHS)}")
    found = detect_arch(state)
    if found is None:
        raise ValueError(f"{source} is no {', '.join(ARCHS)} state dict (CompressAI's FactorizedPrior, ScaleHyperprior, MeanScaleHyperprior); "
                         "other CompressAI models cannot be imported")
    if found != arch:
        raise ValueError(f"{source} holds {found} weights, not {arch}; pass --arch {found}")
    N, M = widths(state)
    model = build(ARCHS[arch], {"N": N, "M": M, "lambdas": [float(lmbda)], "distortion": distortion}).eval()
    own = model.state_dict()
    weights = {k: v for k, v in state.items() if k.rsplit(".", 1)[-1] not in TABLE_BUFFERS and k != "gaussian_conditional.scale_table"}
    unexpected = sorted(set(weights) - set(own))
    params = {k for k, _ in model.named_parameters()} - {"log_gain", "log_inv_gain"}
    missing = sorted(params - set(weights))  # buffers missing from the file (lower bounds, pedestals) keep their fixed values
    misfit = [k for k in weights if k in own and own[k].shape != weights[k].shape]
    if unexpected or missing or misfit:
        what = (f"unexpected {unexpected[0]!r}" if unexpected else f"missing {missing[0]!r}" if missing
                else f"{misfit[0]!r} is {tuple(weights[misfit[0]].shape)}, not {tuple(own[misfit[0]].shape)}")
        raise ValueError(f"{source} does not fit CompressAI's {arch} layout with N={N}, M={M} ({what})")
    torch.nn.Module.load_state_dict(model, weights, strict=False)  # the gains stay 1, the λ is the config's
    table = state.get("gaussian_conditional.scale_table")
    with torch.no_grad():
        model.update(scale_table=table.float() if table is not None and table.numel() else None, force=True)
    return model


def import_compressai(checkpoint: Path, arch: str, out: Path, lmbda: float = ZOO_LAMBDAS[3], distortion: str = "mse", force: bool = False) -> Path:
    """Convert ``checkpoint`` (:func:`read_state_dict`, :func:`convert`) and write ``out/model.safetensors``
    + ``out/model.json``, which ``Codec.load(out)`` and ``compress encode/decode/eval --model out``
    read; returns the weights file. Nothing is written when the input is refused (``ValueError``)
    or ``out`` already holds weights without ``force`` (``FileExistsError``)."""
    checkpoint, out = Path(checkpoint), Path(out)
    if (out / "model.safetensors").exists() and not force:
        raise FileExistsError(f"{out} already holds weights; pass --force to replace them")
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file; give a folder for the codec")
    model = convert(read_state_dict(checkpoint), arch, lmbda, distortion, source=str(checkpoint))
    extra = {"imported_from": {"library": "compressai", "arch": arch, "checkpoint": checkpoint.name}}
    return export_weights(model, out, extra=extra)


# -- the command ------------------------------------------------------------------------------------
def add_import_arguments(parser) -> None:
    """The options of ``compress import-compressai``."""
    parser.add_argument("checkpoint", type=Path, help="a CompressAI model's saved state_dict (.pth, .pth.tar; the zoo's files or your own)")
    parser.add_argument("--arch", required=True, choices=tuple(ARCHS), help="its CompressAI architecture (the zoo's name)")
    parser.add_argument("-o", "--out", type=Path, required=True, help="output codec folder, for --model of encode/decode/eval")
    parser.add_argument("--lmbda", type=float, default=ZOO_LAMBDAS[3],
                        help=f"the λ it was trained with, for --refine only (the zoo's MSE models, qualities 1–8: {', '.join(map(str, ZOO_LAMBDAS))}; "
                             f"default {ZOO_LAMBDAS[3]})")
    parser.add_argument("--metric", choices=("mse", "ms-ssim"), default="mse", help="the distortion it was trained for, for --refine only (default: mse)")
    parser.add_argument("--force", action="store_true", help="replace existing weights in --out")


def run_import(ns) -> Path:
    """``compress import-compressai``: the refusals of :func:`import_compressai` as one-line :class:`UserError`\\ s."""
    from shared.errors import UserError

    try:
        path = import_compressai(ns.checkpoint, ns.arch, ns.out, ns.lmbda, ns.metric, ns.force)
    except (ValueError, FileExistsError) as e:
        raise UserError(str(e)) from None
    print(f"wrote {path} (one rate: --quality has no effect; compress encode/decode/eval --model {ns.out})")
    return path
