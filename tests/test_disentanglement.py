"""Sprites, MIG and the disentanglement use (tiny, CPU, seconds)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from shared.data.sprites import (
    FACTOR_NAMES,
    FACTOR_SIZES,
    num_combinations,
    render,
    sample_factors,
    sample_sprites,
    unravel,
)
from shared.errors import UserError
from shared.metrics.disentanglement import mig


# -- sprites ------------------------------------------------------------------------------------
def test_sprites_are_deterministic_binary_and_inside_the_canvas():
    a, b, c = sample_sprites(300, seed=3), sample_sprites(300, seed=3), sample_sprites(300, seed=4)
    assert a.images.shape == (300, 1, 64, 64) and a.images.dtype == torch.float32
    assert a.factors.shape == (300, 5) and a.factors.dtype == torch.int64
    assert torch.equal(a.images, b.images) and torch.equal(a.factors, b.factors)
    assert not torch.equal(a.factors, c.factors)
    assert set(a.images.unique().tolist()) == {0.0, 1.0}
    assert (a.factors >= 0).all() and (a.factors < torch.tensor(FACTOR_SIZES)).all()
    assert len(torch.unique(a.factors, dim=0)) == 300  # distinct combinations
    assert (a.images.sum((1, 2, 3)) > 20).all()  # every sprite is visible
    border = a.images[..., [0, -1], :].sum() + a.images[..., :, [0, -1]].sum()
    assert border == 0  # no sprite is cut by the edge
    assert a.names == FACTOR_NAMES and a.sizes == FACTOR_SIZES


def test_factor_grid_is_complete_and_sample_covers_every_value():
    assert num_combinations() == math.prod(FACTOR_SIZES)
    grid = unravel(torch.arange(num_combinations()))
    assert len(torch.unique(grid, dim=0)) == num_combinations()
    for k, size in enumerate(FACTOR_SIZES):
        assert torch.equal(torch.bincount(grid[:, k]), torch.full((size,), num_combinations() // size))
    sample = sample_factors(2000, seed=0)
    for k, size in enumerate(FACTOR_SIZES):
        assert len(sample[:, k].unique()) == size


def _centroid(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 1, H, W) → column and row centroids (N,) in pixels."""
    w = images[:, 0]
    idx = torch.arange(64, dtype=torch.float32) + 0.5
    mass = w.sum((1, 2))
    return (w.sum(1) * idx).sum(1) / mass, (w.sum(2) * idx).sum(1) / mass


def test_factors_change_the_image_as_they_say():
    steps = torch.arange(16)
    base = torch.tensor([0, 3, 0, 7, 7])
    along_x = base.repeat(16, 1)
    along_x[:, 3] = steps
    cx, cy = _centroid(render(along_x))
    assert (cx.diff() > 1.5).all() and cy.std() < 1e-4  # pos x moves the square right only
    assert cx[-1] - cx[0] == pytest.approx(32.0, abs=0.5)
    along_y = base.repeat(16, 1)
    along_y[:, 4] = steps
    cx, cy = _centroid(render(along_y))
    assert (cy.diff() > 1.5).all() and cx.std() < 1e-4  # pos y moves it down
    scales = base.repeat(6, 1)
    scales[:, 1] = torch.arange(6)
    assert (render(scales).sum((1, 2, 3)).diff() > 0).all()  # larger scale, larger area
    shapes = base.repeat(3, 1)
    shapes[:, 0] = torch.arange(3)
    imgs = render(shapes)
    assert not torch.equal(imgs[0], imgs[1]) and not torch.equal(imgs[1], imgs[2]) and not torch.equal(imgs[0], imgs[2])


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a * b).sum() / ((a + b) > 0).sum())


def test_rotation_turns_the_shape_with_the_squares_symmetry():
    quarter = FACTOR_SIZES[2] // 4  # index of a π/2 turn
    square = render(torch.tensor([[0, 5, 0, 7, 7], [0, 5, quarter, 7, 7], [0, 5, quarter // 2, 7, 7]]))
    assert _iou(square[0], square[1]) > 0.95  # a square turned by π/2 is itself
    assert _iou(square[0], square[2]) < 0.85  # turned by π/4 it is not
    heart = render(torch.tensor([[2, 5, 0, 7, 7], [2, 5, quarter, 7, 7]]))
    assert _iou(heart[0], heart[1]) < 0.85
    assert heart[0, 0, :32].sum() > heart[0, 0, 32:].sum() * 0.9  # upright: lobes on top carry weight


def test_render_rejects_bad_factor_tables():
    with pytest.raises(UserError):
        render(torch.zeros(4, 3, dtype=torch.long))
    with pytest.raises(UserError):
        render(torch.tensor([[3, 0, 0, 0, 0]]))
    with pytest.raises(UserError):
        sample_factors(0)


# -- MIG ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def factors() -> np.ndarray:
    return sample_factors(4000, seed=1).numpy()


def test_mig_is_near_one_for_a_code_that_copies_each_factor(factors):
    rng = np.random.default_rng(0)
    noisy = factors + rng.normal(0, 0.05, factors.shape)
    code = np.concatenate([noisy * rng.uniform(0.5, 3, 5), rng.normal(size=(len(factors), 5))], axis=1)
    r = mig(code[:, rng.permutation(10)], factors)
    assert r.mig > 0.95 and (r.gaps > 0.9).all()
    assert r.mutual_info.shape == (10, 5) and np.allclose(r.entropy, np.log(FACTOR_SIZES), atol=0.05)
    assert mig(torch.tensor(code), torch.tensor(factors)).mig == pytest.approx(mig(code, factors).mig)


def test_mig_is_near_zero_for_random_and_low_for_entangled_codes(factors):
    rng = np.random.default_rng(0)
    n = len(factors)
    assert mig(rng.normal(size=(n, 10)), factors).mig < 0.05
    standard = (factors - factors.mean(0)) / factors.std(0)
    rotated = standard @ rng.normal(size=(5, 10))  # every latent mixes every factor
    assert mig(rotated, factors).mig < 0.3
    one = np.concatenate([standard.sum(1, keepdims=True), rng.normal(size=(n, 9))], axis=1)
    assert mig(one, factors).mig < 0.15  # all factors crammed into one latent


def test_mig_rejects_bad_input(factors):
    with pytest.raises(UserError):
        mig(np.zeros((len(factors), 1)), factors)
    with pytest.raises(UserError):
        mig(np.zeros((10, 3)), factors)
    constant = factors.copy()
    constant[:, 0] = 0
    with pytest.raises(UserError):
        mig(np.random.default_rng(0).normal(size=(len(factors), 4)), constant)


# -- the use ------------------------------------------------------------------------------------
def test_disentanglement_use_trains_evaluates_and_plots(tmp_path):
    from shared.uses import get_use

    use = get_use("disentanglement")
    cfg = use.config(images=256, eval_images=200, widths=(8, 8, 8, 8), latent_dim=4, capacity=True, capacity_max=5.0)
    train = use.train_config(steps=12, batch_size=16, progress=False, log_every=6, ckpt_every=100)
    use.train(cfg, train, tmp_path)
    numbers = json.loads(use.write_numbers(cfg, tmp_path).read_text())
    assert numbers["eval_images"] == 200 and numbers["factors"] == list(FACTOR_NAMES)
    for run, beta in (("beta_vae", cfg.model.beta), ("vae", 1.0), ("beta_vae_capacity", None)):
        r = numbers[run]
        assert 0.0 <= r["mig"] <= 1.0 and set(r["mig_per_factor"]) == set(FACTOR_NAMES)
        assert len(r["kl_per_latent_nats"]) == 4 and min(r["kl_per_latent_nats"]) >= 0
        assert r["kl_nats"] == pytest.approx(sum(r["kl_per_latent_nats"]), abs=1e-3)
        assert r["recon_bce_nats"] > 0 and r["training"]["steps"] == 12 and r["beta"] == beta
    assert numbers["beta_vae_capacity"]["capacity_max"] == 5.0
    png = use.plot(cfg, tmp_path)
    assert png.is_file() and png.stat().st_size > 10_000
