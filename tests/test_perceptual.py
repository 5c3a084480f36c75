"""LPIPS without a download (shared.metrics.perceptual) and MS-SSIM (shared.metrics.structural)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from shared.pretrained import DOWNLOAD_ENV
from shared.errors import UserError
from shared.metrics import perceptual
from shared.metrics.perceptual import TEAM_FILE, TORCHVISION_FILE, lpips_distance, resolve_alexnet_weights
from shared.metrics.structural import ms_ssim, ms_ssim_db


@pytest.fixture
def no_weights_env(monkeypatch, tmp_path):
    """No explicit weights, no $ENSO_DATA, an empty torch hub cache, downloads not allowed."""
    for var in (perceptual.WEIGHTS_ENV, DOWNLOAD_ENV, "ENSO_DATA"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    assert not perceptual.torchvision_cache_file().exists()
    return tmp_path


@pytest.fixture
def alexnet_file() -> Path:
    """The team's AlexNet features file beside ``$ENSO_DATA``, or skip saying why."""
    root = os.environ.get("ENSO_DATA")
    path = Path(root).parent / "weights" / TEAM_FILE if root else None
    if path is None or not path.is_file():
        pytest.skip(f"needs {TEAM_FILE}: set ENSO_DATA to the data folder beside weights/ (CI sets it to ../shared/data)")
    return path


def _images(seed: int, n: int = 2, size: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, size // 8, size // 8, generator=g)
    return (torch.nn.functional.interpolate(low, size=size, mode="bilinear", align_corners=False) + 0.05 * torch.rand(n, 3, size, size, generator=g)).clamp(0, 1)


# --- where the backbone weights come from ---------------------------------------------------------

def test_explicit_path_wins_then_team_file_then_torch_cache(no_weights_env, monkeypatch):
    tmp = no_weights_env
    cache = perceptual.torchvision_cache_file()
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"x")
    assert resolve_alexnet_weights() == cache

    (tmp / "weights").mkdir()
    team = tmp / "weights" / TEAM_FILE
    team.write_bytes(b"x")
    monkeypatch.setenv("ENSO_DATA", str(tmp / "data"))
    assert resolve_alexnet_weights() == team

    explicit = tmp / "mine.safetensors"
    explicit.write_bytes(b"x")
    monkeypatch.setenv(perceptual.WEIGHTS_ENV, str(explicit))
    assert resolve_alexnet_weights() == explicit
    other = tmp / "other.pth"
    other.write_bytes(b"x")
    assert resolve_alexnet_weights(other) == other  # the argument beats the environment variable


def test_missing_explicit_file_is_one_line_error(no_weights_env, monkeypatch):
    missing = no_weights_env / "nowhere" / TEAM_FILE
    monkeypatch.setenv(perceptual.WEIGHTS_ENV, str(missing))
    with pytest.raises(UserError) as err:
        lpips_distance(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32))
    message = str(err.value)
    assert str(missing) in message and perceptual.WEIGHTS_ENV in message and "\n" not in message


def test_no_weights_anywhere_is_one_line_error_naming_the_file(no_weights_env):
    with pytest.raises(UserError) as err:
        resolve_alexnet_weights()
    message = str(err.value)
    assert TEAM_FILE in message and TORCHVISION_FILE in message and DOWNLOAD_ENV in message
    assert "\n" not in message


def test_download_happens_only_when_allowed(no_weights_env, monkeypatch):
    calls = []

    def fake_download(url, dst, progress=True):
        calls.append(url)
        Path(dst).write_bytes(b"x")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    with pytest.raises(UserError):
        resolve_alexnet_weights(allow_download=False)
    assert calls == []
    assert resolve_alexnet_weights(allow_download=True) == perceptual.torchvision_cache_file()
    assert calls == [perceptual.TORCHVISION_URL]


def test_unreadable_or_incomplete_weights_are_user_errors(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match="cannot be read"):
        perceptual.load_alexnet_features(bad)
    from safetensors.torch import save_file

    partial = tmp_path / "partial.safetensors"
    save_file({"features.0.weight": torch.zeros(64, 3, 11, 11)}, str(partial))
    with pytest.raises(UserError, match="features.0.bias"):
        perceptual.load_alexnet_features(partial)


# --- the distance itself ----------------------------------------------------------------------------

def test_lpips_of_identical_images_is_zero_and_grows_with_noise(alexnet_file):
    x = _images(0)
    assert torch.equal(lpips_distance(x, x, alexnet_file), torch.zeros(2))
    g = torch.Generator().manual_seed(1)
    d_small = lpips_distance(x, (x + 0.02 * torch.randn(x.shape, generator=g)).clamp(0, 1), alexnet_file)
    d_large = lpips_distance(x, (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(0, 1), alexnet_file)
    assert d_small.shape == (2,) and (d_small > 0).all() and (d_large > d_small).all()


def test_lpips_equals_the_package_with_the_backbone_loaded_by_hand(alexnet_file):
    import lpips
    import torchvision
    from safetensors.torch import load_file

    alex = torchvision.models.alexnet(weights=None)
    alex.features.load_state_dict({k.removeprefix("features."): v for k, v in load_file(str(alexnet_file)).items()})
    with pytest.warns(UserWarning):  # torchvision notes the deprecated `pretrained` flag lpips passes
        reference = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    for sl in (reference.net.slice1, reference.net.slice2, reference.net.slice3, reference.net.slice4, reference.net.slice5):
        for name, module in sl.named_children():
            module.load_state_dict(alex.features[int(name)].state_dict())
    x, y = _images(2, n=3, size=96), _images(3, n=3, size=96)
    with torch.no_grad():
        expected = reference(2 * x - 1, 2 * y - 1).flatten()
    got = lpips_distance(x, y, alexnet_file)
    assert (expected > 0.05).all()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_lpips_rejects_mismatched_shapes(alexnet_file):
    with pytest.raises(UserError, match="one shape"):
        lpips_distance(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 16), alexnet_file)


# --- MS-SSIM ----------------------------------------------------------------------------------------

def test_ms_ssim_is_one_for_identical_images_and_drops_with_noise():
    x = _images(4, n=1, size=168)
    g = torch.Generator().manual_seed(5)
    light = (x + 0.02 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    heavy = (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    ref, other = x.expand(3, -1, -1, -1), torch.cat([x, light, heavy])
    s = ms_ssim(ref, other)
    assert s.shape == (3,) and abs(float(s[0]) - 1) < 1e-5
    assert 1 > s[1] > s[2]
    db = ms_ssim_db(ref[1:], other[1:])
    torch.testing.assert_close(db, -10 * torch.log10(1 - s[1:]))
    assert torch.isinf(ms_ssim_db(x, x)).all()


def test_ms_ssim_refuses_images_too_small_for_five_scales():
    with pytest.raises(UserError, match="160"):
        ms_ssim(torch.zeros(1, 3, 128, 200), torch.zeros(1, 3, 128, 200))
