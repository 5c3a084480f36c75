"""The perceptual-adversarial loss and the codec's second decoder: the loss's terms and adaptive
weight, training through the shared trainer (exact resume), decode --decoder/--realism (the mse
path unchanged, blending, determinism across thread counts), and bad input."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import torch

from compress.cli import main as compress_main
from compress.codec import Codec
from shared import registry
from shared.checkpoint import export_weights
from shared.errors import run_cli
from shared.losses.feature_discriminator import fine_band
from shared.losses.perceptual_adversarial import PerceptualAdversarialLoss, PerceptualLossConfig, translate_augment
from shared.metrics.perceptual import lpips_model
from shared.trainer import TrainConfig, Trainer, seed_everything

ALEXNET = Path(os.environ.get("ENSO_DATA", "../shared/data")).parent / "weights" / "alexnet_features.safetensors"
needs_alexnet = pytest.mark.skipif(not ALEXNET.is_file(), reason=f"LPIPS backbone {ALEXNET} absent (the team folder ../shared/weights)")


def image(h: int = 64, w: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, h // 8, w // 8, generator=g)
    return torch.nn.functional.interpolate(base, size=(h, w), mode="bilinear")[0]


# -- the loss -------------------------------------------------------------------------------------
def test_translate_augment_moves_images_alike():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 16, 16)
    a, b = translate_augment(x, x * 2)
    assert torch.equal(b, a * 2) and a.shape == x.shape
    assert not torch.equal(a, x)


def test_adaptive_weight_is_the_gradient_norm_ratio_and_waits_for_disc_start():
    torch.manual_seed(0)
    cfg = PerceptualLossConfig(lpips_weight=0, gan_weight=0.5, disc_start=3, augment=False)
    loss = PerceptualAdversarialLoss(cfg)
    dec = torch.nn.Conv2d(4, 3, 3, padding=1)
    z, x = torch.randn(2, 4, 32, 32), torch.rand(2, 3, 32, 32)
    early = loss.generator_loss(x, torch.sigmoid(dec(z)), dec.weight, step=2)
    assert set(early) == {"loss", "pixel"} and torch.allclose(early["loss"], 150 * early["pixel"])
    assert float(loss.discriminator_loss(x, x, step=2)["loss"].detach()) == 0
    x_hat = torch.sigmoid(dec(z))
    out = loss.generator_loss(x, x_hat, dec.weight, step=3)
    g_rec = torch.autograd.grad(150 * torch.nn.functional.mse_loss(x_hat, x), dec.weight, retain_graph=True)[0]
    g_gan = torch.autograd.grad(out["gan"], dec.weight, retain_graph=True)[0]
    assert float(out["gan_weight"]) == pytest.approx(0.5 * float(g_rec.norm() / (g_gan.norm() + 1e-4)), rel=1e-5)
    assert torch.allclose(out["loss"], 150 * out["pixel"] + out["gan_weight"] * out["gan"])


@pytest.mark.parametrize("mode", ["hinge", "lsgan"])
def test_discriminator_losses_on_known_logits(mode, monkeypatch):
    loss = PerceptualAdversarialLoss(PerceptualLossConfig(lpips_weight=0, gan_loss=mode, augment=False))
    logits = {"real": torch.full((1, 1, 2, 2), 0.5), "fake": torch.full((1, 1, 2, 2), -2.0)}
    real, fake = torch.ones(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)
    monkeypatch.setattr(loss, "_score", lambda v, cond: logits["real"] if float(v.mean()) > 0.5 else logits["fake"])
    out = loss.discriminator_loss(real, fake, step=0)
    if mode == "hinge":  # relu(1 - 0.5) and relu(1 + (-2))
        assert float(out["d_real"]) == pytest.approx(0.5) and float(out["d_fake"]) == 0
    else:  # (0.5 - 1)² and (-2)²
        assert float(out["d_real"]) == pytest.approx(0.25) and float(out["d_fake"]) == pytest.approx(4)


def test_conditioned_discriminator_sees_the_latent():
    torch.manual_seed(0)
    loss = PerceptualAdversarialLoss(PerceptualLossConfig(lpips_weight=0, cond_channels=5))
    x, y = torch.rand(2, 3, 32, 32), torch.randn(2, 5, 2, 2)
    out = loss.discriminator_loss(x, x.flip(-1), step=0, latent=y)
    out["loss"].backward()
    first = loss.discriminator.net[0]
    assert first.in_channels == 8 and first.parametrizations.weight.original.grad is not None


def test_bad_loss_config_is_an_error():
    with pytest.raises(ValueError, match="non-negative"):
        PerceptualLossConfig(gan_weight=-1)
    with pytest.raises(ValueError, match="cannot be conditioned"):
        PerceptualLossConfig(disc_features="alexnet", cond_channels=4)
    with pytest.raises(ValueError, match="use it with disc_features alexnet"):
        PerceptualLossConfig(disc_features="pixels", disc_fine_head=True)


@needs_alexnet
def test_feature_discriminator_trains_heads_on_a_frozen_alexnet(monkeypatch):
    monkeypatch.setenv("ENSO_ALEXNET_WEIGHTS", str(ALEXNET))
    torch.manual_seed(0)
    loss = PerceptualAdversarialLoss(PerceptualLossConfig(lpips_weight=0, disc_features="alexnet", disc_width=8, disc_spectral_norm=False))
    assert all(k.startswith("heads.") for k in loss.discriminator.state_dict())  # the backbone is neither saved nor trained
    x = torch.rand(2, 3, 64, 64)
    x_hat = (x + 0.1 * torch.randn_like(x)).clamp(0, 1).requires_grad_(True)
    logits = loss._score(x, None)
    assert logits.shape[0] == 2 and logits.ndim == 2  # relu1 … relu5 maps of 64²: 15² + 7² + 3 · 3²
    assert logits.shape[1] == 15 * 15 + 7 * 7 + 3 * 3 * 3
    g = loss.generator_loss(x, x_hat, x_hat, step=0)
    torch.autograd.grad(g["gan"], x_hat)  # the adversarial gradient reaches the decoder's output
    opt = loss.discriminator_optimizer(1e-3)
    backbone = [p.clone() for p in lpips_model(ALEXNET).parameters()]
    before = float(loss.discriminator_loss(x, x_hat, step=0)["loss"].detach())
    for _ in range(20):
        opt.zero_grad()
        loss.discriminator_loss(x, x_hat, step=0)["loss"].backward()
        opt.step()
    assert float(loss.discriminator_loss(x, x_hat, step=0)["loss"].detach()) < before
    assert all(torch.equal(a, b) for a, b in zip(backbone, lpips_model(ALEXNET).parameters()))


def test_fine_band_keeps_only_detail():
    flat = torch.full((1, 3, 16, 16), 0.4)
    assert fine_band(flat).abs().max() < 1e-6  # no detail in a flat image (the borders are reflected)
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2
    x = checker.float().expand(1, 3, 16, 16)
    assert fine_band(x).abs().mean() > 0.4  # the finest pattern there is passes almost whole
    blurred = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    assert fine_band(blurred).abs().mean() < fine_band(x).abs().mean() / 3


@needs_alexnet
def test_feature_discriminator_fine_head_sees_detail_and_is_saved(monkeypatch):
    monkeypatch.setenv("ENSO_ALEXNET_WEIGHTS", str(ALEXNET))
    torch.manual_seed(0)
    cfg = PerceptualLossConfig(lpips_weight=0, disc_features="alexnet", disc_fine_head=True, disc_width=8, disc_spectral_norm=False, augment=False)
    loss = PerceptualAdversarialLoss(cfg)
    assert any(k.startswith("fine.") for k in loss.discriminator.state_dict())
    x = torch.rand(2, 3, 64, 64)
    logits = loss._score(x, None)
    assert logits.shape[1] == 15 * 15 + 7 * 7 + 3 * 3 * 3 + 16 * 16  # the AlexNet heads', then the fine head's (stride 4)
    # the fine head adds its own gradient to what reaches the decoder's output
    x_hat = x.clone().requires_grad_(True)
    g = loss.generator_loss(x, x_hat, x_hat, step=0)
    grad = torch.autograd.grad(g["gan"], x_hat)[0]
    plain = PerceptualAdversarialLoss(dataclasses.replace(cfg, disc_fine_head=False))
    plain.discriminator.heads.load_state_dict(loss.discriminator.heads.state_dict())
    grad_plain = torch.autograd.grad(plain.generator_loss(x, x_hat, x_hat, step=0)["gan"], x_hat)[0]
    assert not torch.allclose(grad, grad_plain)


# -- the codec's perceptual decoder -------------------------------------------------------------------
@pytest.fixture(scope="module")
def shipped():
    return Codec.load("mean_scale_cc")


def perceptual_folder(tmp_path: Path, shipped: Codec, scale: float = 1.05, other: bool = False) -> Path:
    """A perceptual decoder of the shipped codec: its weights, g_s scaled (or, with ``other``, h_s changed too)."""
    model = registry.build("mean_scale_cc_perceptual", shipped.model.config.__dict__ | {"lpips_weight": 0.0})
    model.load_state_dict(shipped.model.state_dict(), strict=False)
    with torch.no_grad():
        model.g_s[-1].weight.mul_(scale)
        if other:
            model.h_s[0].weight.add_(0.01)
    folder = tmp_path / f"perceptual_{scale}_{other}"
    export_weights(model, folder, parts=model.export_parts())
    return folder


def test_mse_decoder_is_unchanged_and_realism_blends(tmp_path, shipped):
    data = shipped.encode(image(), 0.3)
    plain = shipped.decode(data)
    assert torch.equal(shipped.decode(data, decoder="mse"), plain)
    same = perceptual_folder(tmp_path, shipped, scale=1.0)
    assert torch.equal(shipped.decode(data, decoder=str(same)), plain)
    folder = perceptual_folder(tmp_path, shipped)
    sharp = shipped.decode(data, decoder=str(folder))
    assert not torch.equal(sharp, plain)
    assert torch.equal(shipped.decode(data, decoder=str(folder), realism=0.0), plain)
    half = shipped.decode(data, decoder=str(folder), realism=0.5)
    inside = (sharp > 0) & (sharp < 1) & (plain > 0) & (plain < 1)  # where neither output was clipped
    assert inside.float().mean() > 0.5 and (half - (sharp + plain) / 2)[inside].abs().max() <= 1.5 / 255  # blend, then 8 bits
    with pytest.raises(ValueError, match="realism"):
        shipped.decode(data, decoder=str(folder), realism=1.5)


def test_perceptual_decoding_is_deterministic_across_thread_counts(tmp_path, shipped):
    folder = perceptual_folder(tmp_path, shipped)
    data = shipped.encode(image(96, 80, seed=3), 0.6)
    threads = torch.get_num_threads()
    try:
        outs = []
        for n in (1, 2):
            torch.set_num_threads(n)
            outs.append(shipped.decode(data, decoder=str(folder), realism=0.7))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(outs[0], outs[1])


def test_a_decoder_for_other_weights_is_refused(tmp_path, shipped):
    folder = perceptual_folder(tmp_path, shipped, other=True)
    with pytest.raises(ValueError, match="other 'mean_scale_cc' weights"):
        shipped.perceptual_synthesis(folder)


def test_cli_decode_errors_are_one_line_and_write_nothing(tmp_path, capsys, shipped):
    enso = tmp_path / "x.enso"
    enso.write_bytes(shipped.encode(image(), 0.3))
    out = tmp_path / "x.png"
    shipped_perceptual = Path(__file__).parents[1] / "compress" / "weights" / "mean_scale_cc_perceptual"
    cases = [(["--realism", "1.5"], "realism must be in [0, 1]"), (["--decoder", str(tmp_path / "nowhere")], "no codec")]
    if not shipped_perceptual.exists():
        cases.append((["--decoder", "perceptual"], "has no perceptual decoder"))
    for flags, message in cases:
        code = run_cli(compress_main, ["decode", str(enso), "-o", str(out), *flags])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1 and not out.exists(), (flags, err)


@needs_alexnet
def test_training_the_decoder_resumes_exactly_and_freezes_the_rest(tmp_path, shipped, monkeypatch):
    monkeypatch.setenv("ENSO_ALEXNET_WEIGHTS", str(ALEXNET))
    config = shipped.model.config.__dict__ | {"disc_start": 1, "gan_weight": 0.1}
    data = [image(64, 64, seed=i) for i in range(4)]

    class Crops(torch.utils.data.Dataset):
        def __len__(self):
            return len(data)

        def __getitem__(self, key):
            return data[key[0] if isinstance(key, tuple) else key]

    cfg = TrainConfig(steps=4, batch_size=2, lr=1e-4, precision="fp32", progress=False, log_every=2, ckpt_every=2)

    def build():
        seed_everything(0)
        model = registry.build("mean_scale_cc_perceptual", config)
        model.load_state_dict(shipped.model.state_dict(), strict=False)
        return model

    whole = build()
    Trainer(whole, Crops(), cfg, tmp_path / "whole").fit()
    half = build()
    Trainer(half, Crops(), cfg, tmp_path / "half").fit(2)
    resumed = build()
    Trainer(resumed, Crops(), cfg, tmp_path / "half", resume=True).fit()
    a, b = whole.state_dict(), resumed.state_dict()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    base = shipped.model.state_dict()
    changed = {k.split(".")[0] for k in base if not torch.equal(base[k], a[k])}
    assert changed == {"g_s"}


@needs_alexnet
def test_init_from_a_perceptual_decoder_takes_its_g_s_and_leaves_the_discriminator_fresh(tmp_path, shipped, monkeypatch):
    from compress.cli import initialise_from

    monkeypatch.setenv("ENSO_ALEXNET_WEIGHTS", str(ALEXNET))
    source = perceptual_folder(tmp_path, shipped)
    torch.manual_seed(0)
    model = registry.build("mean_scale_cc_perceptual", shipped.model.config.__dict__ | {"disc_features": "alexnet"})
    disc = {k: v.clone() for k, v in model.loss.state_dict().items()}
    initialise_from(model, str(source))  # another discriminator than the source's: only the codec is copied
    assert torch.equal(model.g_s[-1].weight, shipped.model.g_s[-1].weight * 1.05)
    assert all(torch.equal(v, model.loss.state_dict()[k]) for k, v in disc.items())


def test_refiner_blocks_start_as_the_identity_and_ship_as_a_variant(tmp_path, shipped):
    """``--refiner-blocks``: initialised from a decoder without them it decodes the same files exactly
    alike; after a training step its export against mean_scale_cc stores g_s alone, the blocks
    included, and decoding stays deterministic across thread counts."""
    from safetensors.torch import load_file

    from compress.cli import initialise_from
    from compress.shipping import export_codec

    source = perceptual_folder(tmp_path, shipped)
    config = shipped.model.config.__dict__ | {"lpips_weight": 0.0, "gan_weight": 0.0, "refiner_blocks": 2}
    seed_everything(0)
    model = registry.build("mean_scale_cc_perceptual", config)
    initialise_from(model, str(source))
    data = shipped.encode(image(96, 80, seed=3), 0.4)
    identity = tmp_path / "identity"
    export_weights(model, identity, parts=model.export_parts())
    assert torch.equal(shipped.decode(data, decoder=str(identity)), shipped.decode(data, decoder=str(source)))

    class Crops(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, key):
            return image(64, 64, seed=key[0] if isinstance(key, tuple) else key)

    cfg = TrainConfig(steps=2, batch_size=2, lr=1e-3, precision="fp32", progress=False, log_every=1, ckpt_every=2)
    Trainer(model, Crops(), cfg, tmp_path / "run").fit()
    refined = tmp_path / "refined"
    export_codec(tmp_path / "run", refined, Path(__file__).parents[1] / "compress" / "weights" / "mean_scale_cc")
    stored = load_file(str(refined / "model.safetensors"))
    assert {k.split(".")[0] for k in stored} == {"g_s"} and any(k.startswith("g_s.refine.") for k in stored)
    threads = torch.get_num_threads()
    try:
        outs = []
        for n in (1, 2):
            torch.set_num_threads(n)
            outs.append(shipped.decode(data, decoder=str(refined)))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], shipped.decode(data, decoder=str(source)))
    with pytest.raises(ValueError, match="refiner_blocks"):
        registry.build("mean_scale_cc_perceptual", shipped.model.config.__dict__ | {"refiner_blocks": -1})
