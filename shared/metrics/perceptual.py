"""LPIPS (Zhang et al. 2018, AlexNet variant, v0.1) that never downloads anything silently.

``lpips.LPIPS(net="alex")`` reads its linear layers from inside the pip package (offline) but
builds its AlexNet backbone from torchvision's ImageNet weights, fetched from the internet on first
use. Here the backbone is built untrained (``pnet_rand=True``) and its conv layers are loaded from a
local file, found in this order (:func:`resolve_alexnet_weights`):

1. an explicit path: the ``weights`` argument, else ``$ENSO_ALEXNET_WEIGHTS``
   (a missing explicit file is an error, not a reason to look further);
2. ``$ENSO_DATA/../weights/alexnet_features.safetensors``, the team's copy
   (torchvision key names ``features.{0,3,6,8,10}.{weight,bias}``);
3. torchvision's own cache, ``<torch.hub.get_dir()>/checkpoints/alexnet-owt-7be5be79.pth``;
4. a download of that file into the cache, only when allowed: ``allow_download=True`` or
   ``ENSO_ALLOW_DOWNLOAD=1``.

Otherwise a :class:`~shared.errors.UserError` names the file and the ways to provide it.
Either file format (``.safetensors`` or a torchvision ``.pth`` state dict) works at step 1.
"""
from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

import torch

from ..errors import UserError
from ..paths import ENV as DATA_ENV
from ..pretrained import hub_cache_file, resolve_weights

WEIGHTS_ENV = "ENSO_ALEXNET_WEIGHTS"
TEAM_FILE = "alexnet_features.safetensors"
TORCHVISION_FILE = "alexnet-owt-7be5be79.pth"
TORCHVISION_URL = f"https://download.pytorch.org/models/{TORCHVISION_FILE}"
#: torchvision ``features`` index of each AlexNet conv layer → the lpips slice that holds it
CONV_SLICES = {0: "slice1", 3: "slice2", 6: "slice3", 8: "slice4", 10: "slice5"}


def torchvision_cache_file() -> Path:
    """Where torchvision keeps (or would download) its ImageNet AlexNet weights."""
    return hub_cache_file(TORCHVISION_FILE)


def resolve_alexnet_weights(weights: str | os.PathLike | None = None, allow_download: bool | None = None) -> Path:
    """The file holding AlexNet's ``features.*`` weights, found in the order of the module doc."""
    data = os.environ.get(DATA_ENV)
    team = Path(data).expanduser().parent / "weights" / TEAM_FILE if data else None
    return resolve_weights(
        "LPIPS backbone weights", weights, WEIGHTS_ENV, [team], TORCHVISION_FILE, TORCHVISION_URL, allow_download,
        accepted=f"{TEAM_FILE} or {TORCHVISION_FILE}",
        how=f"set {WEIGHTS_ENV} to {TEAM_FILE} (the team copy lives in $ENSO_DATA/../weights/)",
    )


def load_alexnet_features(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """AlexNet conv weights from ``path`` (``.safetensors`` or a torchvision ``.pth``), keyed
    ``features.<i>.weight|bias`` for the five conv layers; anything else in the file is dropped."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 — any unreadable file is the user's to fix
        raise UserError(f"LPIPS backbone weights {path} cannot be read ({type(e).__name__}: {e})".replace("\n", " ")) from None
    wanted = {f"features.{i}.{p}" for i in CONV_SLICES for p in ("weight", "bias")}
    missing = sorted(wanted - state.keys())
    if missing:
        raise UserError(f"LPIPS backbone weights {path} lack {', '.join(missing)}; expected torchvision AlexNet keys")
    return {k: state[k] for k in sorted(wanted)}


@functools.lru_cache(maxsize=2)
def _model(path: str):
    import lpips

    state = load_alexnet_features(path)
    # the untrained backbone's init would draw from torch's global RNG: a training run that first
    # builds LPIPS mid-run (and a resumed one that does not) would then see other noise
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        warnings.simplefilter("ignore", UserWarning)  # torchvision's notes on the deprecated ``pretrained`` flag lpips passes
        model = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    # lpips keeps torchvision's module indices inside its slices: features.3 is net.slice2.3
    renamed = {f"{s}.{i}.{p}": state[f"features.{i}.{p}"] for i, s in CONV_SLICES.items() for p in ("weight", "bias")}
    model.net.load_state_dict(renamed)
    return model.eval().requires_grad_(False)


def lpips_model(weights: str | os.PathLike | None = None, allow_download: bool | None = None):
    """The LPIPS (AlexNet, v0.1) module with its backbone loaded offline; cached per weights file.
    Its ``forward`` takes images in [-1, 1]; prefer :func:`lpips_distance`."""
    return _model(str(resolve_alexnet_weights(weights, allow_download).resolve()))


#: channels of the five AlexNet feature maps :func:`alexnet_features` returns (relu1 … relu5)
ALEXNET_CHANNELS = (64, 192, 384, 256, 256)


def alexnet_features(x: torch.Tensor, weights: str | os.PathLike | None = None) -> list[torch.Tensor]:
    """LPIPS's frozen AlexNet on images (B, 3, H, W) in [0, 1]: its five ReLU maps, (B, C_l, H_l, W_l)
    with C_l = :data:`ALEXNET_CHANNELS` (strides 4, 8, 16, 16, 16), unnormalised. The backbone has
    no trainable parameters, but gradients flow to ``x`` (for a discriminator on these features)."""
    model = lpips_model(weights).to(x.device)
    return list(model.net(model.scaling_layer(x.float() * 2 - 1)))


def lpips_distance(x: torch.Tensor, y: torch.Tensor, weights: str | os.PathLike | None = None, allow_download: bool | None = None) -> torch.Tensor:
    """LPIPS per image: (B, 3, H, W) × 2 in [0, 1] → (B,) ≥ 0 (0 for identical images; lower is closer).

    Runs on ``x``'s device without gradients. Grey (B, 1, H, W) images are repeated to 3 channels.
    """
    if x.shape != y.shape or x.ndim != 4 or x.shape[1] not in (1, 3):
        raise UserError(f"lpips_distance needs two (B, 3, H, W) batches of one shape, not {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[1] == 1:
        x, y = x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1)
    model = lpips_model(weights, allow_download).to(x.device)
    with torch.no_grad():
        return model(x.float() * 2 - 1, y.float() * 2 - 1).flatten()
