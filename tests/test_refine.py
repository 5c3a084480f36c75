"""Encoder-side latent refinement (compress.refine, ``compress encode --refine``)."""
from __future__ import annotations

import pytest
import torch

from compress.codec import Codec
from shared.errors import UserError
from tests.test_codec import image, small_codec


@pytest.fixture(scope="module")
def codec() -> Codec:
    return small_codec("mean_scale")


@pytest.fixture(scope="module", params=["mean_scale", "mean_scale_cc", "hyperprior", "factorized"])
def any_codec(request) -> Codec:
    return small_codec(request.param)


def file_cost(codec: Codec, img: torch.Tensor, data: bytes, quality: float) -> float:
    """λ·255²·MSE + bpp of a file, measured on its decoded pixels and its whole length."""
    mse = (codec.decode(data) - img).pow(2).mean().item()
    return codec.model.quality_lambda(quality) * 255**2 * mse + len(data) * 8 / (img.shape[1] * img.shape[2])


@pytest.mark.parametrize("quality", [0.2, 0.8])
def test_refined_files_decode_and_cost_less(any_codec, quality):
    img = image(3, 90, 120, seed=3)  # not a multiple of 64: the padding must not count
    plain = any_codec.encode(img, quality)
    refined = any_codec.encode(img, quality, refine=30)
    assert refined != plain
    assert any_codec.decode(refined).shape == img.shape
    assert file_cost(any_codec, img, refined, quality) < file_cost(any_codec, img, plain, quality)


def test_refinement_is_deterministic_and_leaves_the_model_untouched(codec):
    img = image(3, 64, 64, seed=4)
    before = {k: v.clone() for k, v in codec.model.state_dict().items()}
    flags = [p.requires_grad for p in codec.model.parameters()]
    assert codec.encode(img, 0.5, refine=5) == codec.encode(img, 0.5, refine=5)
    assert all(torch.equal(v, before[k]) for k, v in codec.model.state_dict().items())
    assert [p.requires_grad for p in codec.model.parameters()] == flags
    assert all(p.grad is None for p in codec.model.parameters())


def test_annealed_rounding_lies_between_the_grid_points_and_becomes_rounding():
    from compress.refine import annealed_round

    u = torch.linspace(-3.2, 3.2, 1001)
    soft = annealed_round(u, 0.5, torch.Generator().manual_seed(1))
    assert torch.all((soft >= u.floor()) & (soft <= u.floor() + 1))
    assert torch.equal(soft, annealed_round(u, 0.5, torch.Generator().manual_seed(1)))
    assert not torch.equal(soft, annealed_round(u, 0.5, torch.Generator().manual_seed(2)))
    away = (u - u.round()).abs() < 0.4  # not at a tie
    cold = annealed_round(u, 0.01, torch.Generator().manual_seed(1))
    assert torch.allclose(cold[away], u.round()[away], atol=1e-4)
    u.requires_grad_(True)
    annealed_round(u, 0.3, torch.Generator().manual_seed(1)).sum().backward()
    assert u.grad.abs().sum() > 0


def test_quality_lambda_interpolates_the_trained_levels(codec):
    lambdas = codec.model.lambdas.tolist()
    assert codec.model.quality_lambda(0.0) == pytest.approx(lambdas[0])
    assert codec.model.quality_lambda(1.0) == pytest.approx(lambdas[-1])
    assert codec.model.quality_lambda(0.1) == pytest.approx((lambdas[0] * lambdas[1]) ** 0.5)


def test_target_bpp_with_refinement_stays_under_the_target(codec):
    img = image(3, 64, 96, seed=5)
    target = len(codec.encode(img, 0.6)) * 8 / (64 * 96)
    data = codec.encode_to_bpp(img, target, refine=10)
    assert len(data) * 8 / (64 * 96) <= target
    assert data != codec.encode_to_bpp(img, target)  # the refined file was kept
    assert codec.decode(data).shape == img.shape


def test_refining_a_huge_image_is_refused_before_any_work(codec):
    with pytest.raises(UserError, match="without --refine"):
        codec.encode(torch.zeros(3, 2100, 2100), 0.5, refine=5)


def test_cli_encodes_a_folder_with_refinement_and_decodes_it(tmp_path):
    from compress.cli import main
    from shared.data.images import load_image, save_image

    src = tmp_path / "photos"
    src.mkdir()
    for i, (h, w) in enumerate([(40, 56), (33, 70)]):
        save_image(image(3, h, w, seed=i), src / f"p{i}.png")
    assert main(["encode", str(src), "-o", str(tmp_path / "enso"), "--quality", "0.3", "--refine", "3"]) == 0
    assert main(["decode", str(tmp_path / "enso"), "-o", str(tmp_path / "png")]) == 0
    for i in range(2):
        assert load_image(tmp_path / "png" / f"p{i}.png").shape == load_image(src / f"p{i}.png").shape
    with pytest.raises(UserError, match=r"refine takes a number of steps \(0 or more\), not -1"):
        main(["encode", str(src / "p0.png"), "-o", str(tmp_path / "x.enso"), "--refine", "-1"])
    assert not (tmp_path / "x.enso").exists()
