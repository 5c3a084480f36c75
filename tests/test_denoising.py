"""The denoising autoencoder (corruptions, any-size inference, training) and the BSD68 denoising use."""
from __future__ import annotations

import json
import math

import pytest
import torch

from shared import registry
from shared.cli import main
from shared.data import TensorItems
from shared.errors import UserError
from shared.models.denoising import DenoisingAEConfig, corrupt
from shared.trainer import TrainConfig, Trainer, seed_everything
from shared.uses.denoising import DenoisingConfig, train_folders

from .conftest import shared_data


def flat(value: float, shape=(2, 3, 128, 128)) -> torch.Tensor:
    return torch.full(shape, value)


def test_gaussian_noise_has_sigma_over_255_std_and_is_not_clipped(seed):
    cfg = DenoisingAEConfig(corruption="gaussian", sigma=25.0)
    x = flat(0.95)
    noise = corrupt(x, cfg) - x
    assert noise.std().item() == pytest.approx(25 / 255, rel=0.02)
    assert abs(noise.mean().item()) < 0.002
    assert (x + noise).max() > 1.0  # the standard protocol does not clip the noisy image


def test_masking_zeroes_the_asked_fraction_of_pixels_in_all_channels(seed):
    cfg = DenoisingAEConfig(corruption="masking", mask_fraction=0.3)
    y = corrupt(flat(0.5), cfg)
    zero = y == 0
    assert zero.float().mean().item() == pytest.approx(0.3, abs=0.01)
    assert torch.equal(zero[:, :1].expand_as(zero), zero)  # a masked pixel loses every channel
    assert torch.all((y == 0) | (y == 0.5))


def test_salt_pepper_sets_half_the_fraction_to_each_extreme(seed):
    cfg = DenoisingAEConfig(corruption="salt_pepper", salt_pepper_fraction=0.2)
    y = corrupt(flat(0.5), cfg)
    assert (y == 0).float().mean().item() == pytest.approx(0.1, abs=0.01)
    assert (y == 1).float().mean().item() == pytest.approx(0.1, abs=0.01)
    assert (y == 0.5).float().mean().item() == pytest.approx(0.8, abs=0.01)


def test_corruption_follows_the_global_rng_or_a_given_generator():
    cfg = DenoisingAEConfig()
    x = flat(0.5, (1, 1, 8, 8))
    torch.manual_seed(3)
    a = corrupt(x, cfg)
    torch.manual_seed(3)
    assert torch.equal(a, corrupt(x, cfg))
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(corrupt(x, cfg, g1), corrupt(x, cfg, g2))
    assert not torch.equal(a, corrupt(x, cfg))


@pytest.mark.parametrize("shape", [(1, 1, 37, 53), (2, 1, 5, 9), (1, 1, 1, 3)])
def test_denoise_pads_and_crops_back_to_odd_input_sizes(seed, shape):
    model = registry.build("denoising_ae", {"widths": (4, 8, 8)}).eval()
    assert model.stride == 4
    out = model.denoise(torch.rand(shape))
    assert out.shape == shape
    assert out.min() >= 0 and out.max() <= 1


def test_residual_model_with_zero_noise_estimate_returns_its_input(seed):
    model = registry.build("denoising_ae", {"widths": (4, 8), "residual": True}).eval()
    torch.nn.init.zeros_(model.net.tail.weight)
    torch.nn.init.zeros_(model.net.tail.bias)
    x = torch.rand(1, 1, 11, 13)
    assert torch.allclose(model.denoise(x), x)


def test_rgb_model_and_bad_configs():
    rgb = registry.build("denoising_ae", {"channels": 3, "widths": (4, 8)}).eval()
    assert rgb.denoise(torch.rand(1, 3, 9, 9)).shape == (1, 3, 9, 9)
    with pytest.raises(ValueError, match="denoise expects"):
        rgb.denoise(torch.rand(1, 1, 9, 9))
    with pytest.raises(ValueError, match="mask_fraction"):
        registry.build("denoising_ae", {"mask_fraction": 1.5})
    with pytest.raises(UserError, match="corruption"):
        registry.build("denoising_ae", {"corruption": "blur"})


def smooth_images(n: int, size: int, seed: int) -> torch.Tensor:
    """Smooth random grey images: low-resolution noise upsampled bilinearly, (n, 1, size, size) in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 1, 4, 4, generator=g)
    return torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)


def test_a_few_trainer_steps_make_it_denoise(seed):
    x = smooth_images(64, 16, seed=0)
    test = smooth_images(16, 16, seed=1)
    noisy = corrupt(test, DenoisingAEConfig(sigma=25.0), torch.Generator().manual_seed(0))
    seed_everything(0)
    model = registry.build("denoising_ae", {"widths": (8, 16)})

    def test_mse() -> float:
        model.eval()
        return float(((model.denoise(noisy) - test) ** 2).mean())

    before = test_mse()
    Trainer(model, TensorItems(x), TrainConfig(steps=60, batch_size=16, lr=3e-3, precision="fp32", device="cpu", threads=1, progress=False)).fit()
    after = test_mse()
    noisy_mse = float(((noisy.clamp(0, 1) - test) ** 2).mean())
    assert after < 0.7 * before
    assert after < 0.7 * noisy_mse  # better than the (clipped) noisy input itself


def test_missing_training_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        train_folders(DenoisingConfig(train_data=(str(tmp_path / "nope"),)))


def test_use_end_to_end_on_real_data(tmp_path, capsys):
    bsd68 = shared_data("bsd68")
    photos = shared_data("train_photos") / "bsds500"
    out = tmp_path / "out"
    args = [
        "--train-data", str(photos / "train"), "--test-data", str(bsd68), "--limit", "2",
        "--crop", "32", "--widths", "8", "16",
    ]
    train = ["--steps", "4", "--batch-size", "4", "--precision", "fp32", "--threads", "1", "--no-progress", "--log-every", "2"]
    assert main(["demo", "denoising", "-o", str(out / "denoising"), *args, *train]) == 0
    numbers = json.loads((out / "denoising" / "numbers.json").read_text())
    assert numbers["test_images"] == 2
    psnr = numbers["mean_psnr_db"]
    # unclipped sigma-25 noise: PSNR = 20 log10(255 / 25) = 20.17 dB up to sampling
    assert psnr["noisy_input"] == pytest.approx(20 * math.log10(255 / 25), abs=0.1)
    assert psnr["wiener_5x5"] > psnr["noisy_input"] + 3
    assert all(math.isfinite(v) for v in psnr.values())
    assert numbers["training"]["steps"] == 4
    assert numbers["published_psnr_db_bsd68_sigma25"]["BM3D"] == 28.57
    assert (out / "denoising" / "denoising.png").stat().st_size > 0
    assert (out / "denoising" / "runs" / "dae" / "export" / "model.safetensors").is_file()
