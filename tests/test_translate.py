"""Unpaired translation: generators, PatchGAN and GAN losses, image pool, CycleGAN through the
trainer (exact resume), any-size and tiled inference, data, and the ``translate`` command."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from shared import registry
from shared.checkpoint import export_weights
from shared.data import TensorItems
from shared.errors import UserError, run_cli
from shared.losses.adversarial import ImagePool, PatchDiscriminator, gan_loss, init_weights
from shared.trainer import TrainConfig, Trainer, seed_everything
from translate.apply import apply_generator, instance_norm_stats, reflect_pad_to, work_macs
from translate.cli import build_parser, main
from translate.data import UnpairedImages, dataset_folders
from translate.models.generators import build_generator, gmacs
from translate.options import ApplyOptions, DemoOptions, EvalOptions

TINY = {"ngf": 4, "ndf": 4, "n_blocks": 1, "pool_size": 2}
CFG = TrainConfig(steps=6, batch_size=2, lr=2e-4, precision="fp32", progress=False, log_every=3, ckpt_every=3)


def tiny_cyclegan(seed: int = 0, **overrides):
    seed_everything(seed)
    return registry.build("cyclegan", {**TINY, **overrides})


def smooth_image(c: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, c, h // 8 + 2, w // 8 + 2, generator=g)
    return nn.functional.interpolate(base, size=(h, w), mode="bilinear")[0]


def without_instance_norm(net: nn.Module) -> nn.Module:
    for m in list(net.modules()):
        for name, child in list(m.named_children()):
            if isinstance(child, nn.InstanceNorm2d):
                setattr(m, name, nn.Identity())
    return net


# -- generators ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["resnet", "mobile", "unet"])
@pytest.mark.parametrize("upsample", ["transposed", "resize_conv"])
def test_generator_output_shape_and_range(kind, upsample):
    torch.manual_seed(0)
    g = build_generator(kind, ngf=4, n_blocks=2, num_downs=6, upsample=upsample)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    y = g(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    assert g.stride == (64 if kind == "unet" else 4)


def test_unet_refuses_too_few_levels_with_a_value_error_naming_the_field():
    with pytest.raises(ValueError, match="num_downs 5 or more, not 4") as e:
        build_generator("unet", num_downs=4)
    assert "--" not in str(e.value)


@pytest.mark.parametrize("kind", ["resnet", "mobile", "unet"])
@pytest.mark.parametrize("upsample", ["transposed", "resize_conv"])
def test_gmacs_counts_as_torchs_flop_counter_without_computing(kind, upsample):
    from shared.throughput import count_gmacs

    g = build_generator(kind, ngf=4, n_blocks=2, num_downs=5, upsample=upsample).eval()
    assert gmacs(g, (64, 96)) == pytest.approx(count_gmacs(g, torch.zeros(1, 3, 64, 96)), rel=1e-9)
    assert all(p.device.type == "cpu" for p in g.parameters())  # counted on a meta copy: the generator is untouched


def test_work_macs_rounds_up_to_the_stride():
    g = build_generator("unet", ngf=4, num_downs=5)
    assert work_macs(g, 64) == pytest.approx(gmacs(g, 64) * 1e9)
    assert work_macs(g, (40, 70)) == pytest.approx(gmacs(g, (64, 96)) * 1e9)


def test_gmacs_counts_a_conv_exactly():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert gmacs(conv, 16) * 1e9 == pytest.approx(3 * 8 * 9 * 16 * 16)
    assert gmacs(conv, (16, 32)) == pytest.approx(2 * gmacs(conv, 16))


def test_mobile_generator_costs_far_fewer_macs_than_resnet9():
    with torch.device("meta"):  # counted without computing
        resnet9 = build_generator("resnet", n_blocks=9)
        resnet6 = build_generator("resnet", n_blocks=6)
        mobile = build_generator("mobile", n_blocks=9)
        narrow = build_generator("mobile", n_blocks=9, ngf=32)
    r9, r6, m, n = (gmacs(g, 256) for g in (resnet9, resnet6, mobile, narrow))
    assert r6 < r9 and m < r9 / 4 and n < m / 3


# -- discriminator and losses -------------------------------------------------------------------
def test_patchgan_output_shape_and_70px_receptive_field():
    d = PatchDiscriminator(3, ndf=8)
    assert d(torch.zeros(2, 3, 64, 64)).shape == (2, 1, 6, 6)
    with torch.device("meta"):
        assert PatchDiscriminator()(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)
    d = without_instance_norm(PatchDiscriminator(3, ndf=2))
    x = torch.zeros(1, 3, 128, 128, requires_grad=True)
    d(x)[0, 0, 7, 7].backward()
    rows = (x.grad[0].abs().sum((0, 2)) > 0).nonzero()
    assert int(rows.max() - rows.min() + 1) == 70


def test_gan_losses_on_known_values():
    pred = torch.tensor([0.5, 1.5])
    assert float(gan_loss(pred, True, "lsgan")) == pytest.approx((0.25 + 0.25) / 2)
    assert float(gan_loss(pred, False, "lsgan")) == pytest.approx((0.25 + 2.25) / 2)
    zero = torch.zeros(3, 4)
    assert float(gan_loss(zero, True, "vanilla")) == pytest.approx(np.log(2))
    assert float(gan_loss(torch.full((2,), 20.0), True, "vanilla")) < 1e-6
    assert float(gan_loss(torch.full((2,), 20.0), False, "vanilla")) == pytest.approx(20.0, rel=1e-4)


def test_init_weights_is_normal_002():
    torch.manual_seed(0)
    conv = init_weights(nn.Conv2d(64, 64, 3))
    assert abs(float(conv.weight.detach().std()) - 0.02) < 0.002 and not conv.bias.any()


# -- image pool ---------------------------------------------------------------------------------
def test_pool_returns_new_images_while_filling():
    pool = ImagePool(4)
    for _ in range(2):
        x = torch.rand(2, 3, 8, 8)
        assert torch.equal(pool.query(x), x)
    assert int(pool.count) == 4
    assert torch.equal(ImagePool(0).query(x), x)


def history_draws(seed: int, n: int = 200) -> tuple[list[bool], torch.Tensor]:
    pool = ImagePool(5)
    pool.query(torch.arange(5.0).view(5, 1, 1, 1).expand(5, 1, 2, 2))
    torch.manual_seed(seed)
    outs = [pool.query(torch.full((1, 1, 2, 2), 100.0 + i)) for i in range(n)]
    from_history = [float(o[0, 0, 0, 0]) != 100.0 + i for i, o in enumerate(outs)]
    return from_history, torch.cat(outs)


def test_full_pool_swaps_about_half_deterministically():
    from_history, outs = history_draws(0)
    assert 0.4 < sum(from_history) / len(from_history) < 0.6
    again, outs2 = history_draws(0)
    assert again == from_history and torch.equal(outs, outs2)
    assert history_draws(1)[0] != from_history


def test_pool_state_round_trips_through_state_dict():
    pool = ImagePool(3)
    pool.query(torch.rand(4, 3, 8, 8))
    fresh = ImagePool(3)
    fresh.load_state_dict(pool.state_dict())
    x = torch.rand(6, 3, 8, 8)
    torch.manual_seed(5)
    a = pool.query(x)
    torch.manual_seed(5)
    assert torch.equal(fresh.query(x), a)


# -- CycleGAN through the trainer ---------------------------------------------------------------
def pairs(n: int = 8, size: int = 32) -> TensorItems:
    g = torch.Generator().manual_seed(0)
    return TensorItems(torch.rand(n, 3, size, size, generator=g), torch.rand(n, 3, size, size, generator=g))


def params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_generator_step_leaves_discriminators_without_gradients():
    model = tiny_cyclegan()
    batch = (torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))
    out = model.training_step(batch, "generator")
    assert {"loss_G_A", "loss_G_B", "loss_cycle_A", "loss_cycle_B", "loss_idt_A", "loss_idt_B"} <= set(out)
    out["loss"].backward()
    assert all(p.grad is None for p in [*model.d_a.parameters(), *model.d_b.parameters()])
    assert all(p.grad is not None for p in model.g_ab.parameters())
    out = model.training_step(batch, "discriminator")
    assert float(out["loss"].detach()) == pytest.approx(float(out["loss_D_A"].detach() + out["loss_D_B"].detach()))
    out["loss"].backward()
    assert all(p.grad is not None for p in model.d_a.parameters())


def test_trainer_steps_change_weights_and_resume_is_exact(tmp_path):
    before = params(tiny_cyclegan())
    full = Trainer(tiny_cyclegan(), pairs(), CFG, tmp_path / "full")
    out = full.fit()
    assert {"generator/loss", "discriminator/loss_D_A"} <= set(out)
    after = params(full.model)
    for net in ("g_ab", "g_ba", "d_a", "d_b"):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(net + ".")), net
    assert int(after["pool_a.count"]) == 2  # the pool is full and part of the state
    half = Trainer(tiny_cyclegan(), pairs(), CFG, tmp_path / "half")
    half.fit(CFG.steps // 2)
    resumed = Trainer(tiny_cyclegan(seed=123), pairs(), CFG, tmp_path / "half", resume=True)
    assert resumed.step == CFG.steps // 2
    resumed.fit()
    a, b = params(full.model), params(resumed.model)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_cyclegan_learns_a_colour_swap():
    """Reddish A and bluish B (no pairs): 80 steps learn red → blue and back, with small cycle error."""
    g = torch.Generator().manual_seed(0)

    def smooth(n: int) -> torch.Tensor:
        return nn.functional.interpolate(torch.rand(n, 1, 6, 6, generator=g), size=(32, 32), mode="bilinear")

    a = torch.cat([smooth(64) * 0.8 + 0.2, smooth(64) * 0.2, smooth(64) * 0.2], 1)
    b = torch.cat([smooth(64) * 0.2, smooth(64) * 0.2, smooth(64) * 0.8 + 0.2], 1)
    model = tiny_cyclegan(ngf=8, ndf=8, n_blocks=2, pool_size=10)
    cfg = TrainConfig(steps=80, batch_size=4, lr=1e-3, precision="fp32", progress=False, log_every=80)
    Trainer(model, TensorItems(a, b), cfg).fit()
    model.eval()
    fake_b, fake_a = model.translate_ab(a[:16]), model.translate_ba(b[:16])
    red_b, blue_b = fake_b[:, 0].mean(), fake_b[:, 2].mean()
    red_a, blue_a = fake_a[:, 0].mean(), fake_a[:, 2].mean()
    assert blue_b > red_b + 0.3 and red_a > blue_a + 0.3
    assert float((model.translate_ba(fake_b) - a[:16]).abs().mean()) < 0.1


def test_translate_methods_take_and_return_unit_range():
    model = tiny_cyclegan().eval()
    x = torch.rand(1, 3, 32, 32)
    for y in (model.translate_ab(x), model.translate_ba(x)):
        assert y.shape == x.shape and 0 <= float(y.min()) and float(y.max()) <= 1


# -- inference at any size ----------------------------------------------------------------------
@pytest.mark.parametrize("kind,extra", [("resnet", {}), ("unet", {"num_downs": 5})])
def test_apply_keeps_odd_and_tiny_sizes(kind, extra):
    g = tiny_cyclegan(generator=kind, **extra).eval().g_ab
    for h, w in [(37, 53), (5, 1), (70, 33)]:
        assert apply_generator(g, smooth_image(3, h, w)).shape == (3, h, w)


def test_apply_equals_the_generator_where_no_padding_is_needed():
    model = tiny_cyclegan().eval()
    x = smooth_image(3, 64, 96)
    assert torch.allclose(apply_generator(model.g_ab, x), model.translate_ab(x[None])[0], atol=1e-6)


@pytest.mark.parametrize("kind,extra", [("resnet", {"n_blocks": 2}), ("mobile", {"n_blocks": 2}), ("unet", {"num_downs": 5})])
def test_tiled_apply_matches_untiled(kind, extra):
    g = tiny_cyclegan(generator=kind, **extra).eval().g_ab
    x = smooth_image(3, 300, 200)
    whole = apply_generator(g, x, tile=4096)
    tiled = apply_generator(g, x, tile=64, margin=64)
    assert tiled.shape == whole.shape == x.shape
    assert (tiled - whole).abs().max() < 1e-4


def test_instance_norm_stats_replay_the_recorded_normalisation():
    g = tiny_cyclegan().eval().g_ab
    x = reflect_pad_to(smooth_image(3, 37, 41)[None] * 2 - 1, 4)
    assert x.shape[-2:] == (40, 44)
    stats: dict = {}
    with instance_norm_stats(g, stats, record=True):
        y = g(x)
    assert len(stats) == sum(isinstance(m, nn.InstanceNorm2d) for m in g.modules())
    other = smooth_image(3, 40, 44, seed=1)[None] * 2 - 1
    with instance_norm_stats(g, stats, record=False):
        assert torch.allclose(g(x), y, atol=1e-6)
        fixed = g(other)
    assert not torch.allclose(fixed, g(other), atol=1e-3)  # the other image's own statistics differ


# -- data ---------------------------------------------------------------------------------------
def write_images(folder, n: int, size=(40, 48), mode: str = "RGB", seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        arr = (rng.random((size[0], size[1], 3)) * 255).astype("uint8")
        Image.fromarray(arr).convert(mode).save(folder / f"{i}.png")


def test_unpaired_images_are_reproducible_and_rgb(tmp_path):
    write_images(tmp_path / "trainA", 3, mode="L")
    write_images(tmp_path / "trainB", 5, mode="RGBA", seed=1)
    a_dir, b_dir = dataset_folders("x", tmp_path)
    ds = UnpairedImages(a_dir, b_dir, load_size=36, crop=32)
    assert len(ds) == 5
    a, b = ds[(4, 7)]
    assert a.shape == b.shape == (3, 32, 32) and 0 <= float(a.min()) and float(b.max()) <= 1
    a2, b2 = ds[(4, 7)]
    assert torch.equal(a, a2) and torch.equal(b, b2)
    assert not torch.equal(ds[(4, 8)][1], b)


def test_dataset_folders_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("ENSO_DATA", raising=False)
    with pytest.raises(UserError, match="ENSO_DATA"):
        dataset_folders("horse2zebra")
    write_images(tmp_path / "trainA", 1)
    (tmp_path / "trainB").mkdir()
    with pytest.raises(UserError, match="holds no images"):
        dataset_folders("x", tmp_path)
    with pytest.raises(ValueError, match="give both folders, a and b"):
        dataset_folders("x", a=tmp_path / "trainA")
    monkeypatch.setenv("ENSO_DATA", str(tmp_path))
    with pytest.raises(UserError, match="does not exist"):
        dataset_folders("horse2zebra")
    with pytest.raises(ValueError, match="exceeds the load size"):
        UnpairedImages(tmp_path / "trainA", tmp_path / "trainA", load_size=32, crop=64)


# -- the translate command ----------------------------------------------------------------------
def translate(*args: str) -> subprocess.CompletedProcess:
    """The installed command's module in a fresh process (the entry point, exit code, stderr)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "translate.cli", *args], capture_output=True, text=True, env=env)


def translate_here(capsys, *args: str) -> tuple[int, str]:
    """The same in this process (no start-up cost): exit code and stderr."""
    capsys.readouterr()
    code = run_cli(main, list(args))
    return code, capsys.readouterr().err


def test_cli_trains_translates_and_refuses_bad_input(tmp_path, capsys, monkeypatch):
    from translate import apply as translate_apply

    monkeypatch.setattr(translate_apply, "WEIGHTS_DIR", tmp_path / "no_weights")  # as if none were shipped
    data = tmp_path / "h2z"
    write_images(data / "trainA", 3)
    write_images(data / "trainB", 3, seed=1)
    run = tmp_path / "run"
    tiny = ["--ngf", "4", "--ndf", "4", "--n-blocks", "1", "--pool-size", "2"]
    out = translate("train", "h2z", "--data", str(data), "--run", str(run), "--size", "32", "--steps", "3", *tiny,
                    "--threads", "1", "--precision", "fp32", "--no-progress")
    assert out.returncode == 0, out.stderr
    assert (run / "export" / "model.safetensors").is_file() and json.loads((run / "config.json").read_text())["load_size"] == 36
    page = (run / "web" / "index.html").read_text()  # the run's page: 3 training images per domain, as no test split exists
    assert page.count("<img") == 18 and "cycle PSNR" in page

    photos = tmp_path / "photos"
    write_images(photos, 2, size=(37, 53))
    write_images(photos / "sub", 1, size=(20, 70), mode="L")
    code, err = translate_here(capsys, "horse2zebra", str(photos), "-o", str(tmp_path / "zebras"), "--model", str(run))
    assert code == 0, err
    for rel, (h, w) in {"0.png": (37, 53), "1.png": (37, 53), "sub/0.png": (20, 70)}.items():
        with Image.open(tmp_path / "zebras" / rel) as im:
            assert im.size == (w, h) and im.mode == "RGB"
    code, err = translate_here(capsys, "horse2zebra", str(photos), "-o", str(tmp_path / "zebras"), "--model", str(run))
    assert code == 2 and "--force" in err
    horse = tmp_path / "horse.png"
    code, err = translate_here(capsys, "zebra2horse", str(photos / "0.png"), "-o", str(horse), "--model", str(run / "export"))
    assert code == 0, err
    with Image.open(horse) as im:
        assert im.size == (53, 37)
    code, err = translate_here(capsys, "zebra2horse", str(photos), "-o", str(tmp_path / "horses.png"), "--model", str(run))
    assert code == 2 and "output folder" in err

    (tmp_path / "empty").mkdir()
    bad_export = tmp_path / "bad"
    bad_export.mkdir()
    (bad_export / "model.safetensors").write_bytes((run / "export" / "model.safetensors").read_bytes())
    meta = json.loads((run / "export" / "model.json").read_text())
    meta["config"]["ngf"] = 8
    (bad_export / "model.json").write_text(json.dumps(meta))
    vae_export = tmp_path / "vae"
    export_weights(registry.build("vae", {"input_shape": (1, 8, 8), "latent_dim": 2}), vae_export)
    cases = {
        "missing folder": ([str(tmp_path / "nowhere"), "--model", str(run)], "does not exist"),
        "empty folder": ([str(tmp_path / "empty"), "--model", str(run)], "holds no images"),
        "weights that do not fit": ([str(photos), "--model", str(bad_export)], "do not fit"),
        "no model": ([str(photos), "--model", str(tmp_path / "empty")], "holds no trained model"),
        "not a translator": ([str(photos), "--model", str(vae_export)], "not a translator"),
        "none shipped": ([str(photos)], "no horse2zebra weights are shipped"),
    }
    for what, (args, message) in cases.items():
        code, err = translate_here(capsys, "horse2zebra", *args, "-o", str(tmp_path / "never"))
        assert code == 2 and message in err, (what, err)
        assert err.count("\n") == 1 and "Traceback" not in err, what
        assert not (tmp_path / "never").exists(), what
    bad = translate("a2b", str(photos), "-o", str(tmp_path / "never"), "--model", str(bad_export))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and not (tmp_path / "never").exists()


# -- the typed options ---------------------------------------------------------------------------
@pytest.mark.parametrize("options,message", [
    (lambda: ApplyOptions(tile=8), "tile must be 64 px or more, not 8"),
    (lambda: ApplyOptions(direction="xy"), "direction must be 'ab' or 'ba'"),
    (lambda: ApplyOptions(threads=-1), "threads must be 0"),
    (lambda: ApplyOptions(device="gpu0"), "device must be auto, cpu, cuda or cuda:N"),
    (lambda: EvalOptions(size=32), "size must be at least 64"),
    (lambda: EvalOptions(limit=1), "limit must be at least 2"),
    (lambda: EvalOptions(split="train"), "split must be 'test' or 'val'"),
    (lambda: DemoOptions(threads=-2), "threads must be 0"),
])
def test_options_refuse_bad_values_with_value_errors_naming_fields(options, message):
    with pytest.raises(ValueError, match=message) as e:
        options()
    assert "--" not in str(e.value)


def test_commands_build_their_options_from_the_flags_users_type():
    def options(cls, *argv, **base):
        from shared.config import config_from_args

        return config_from_args(cls, build_parser().parse_args(list(argv)), base=cls(**base) if base else None)

    a = options(ApplyOptions, "zebra2horse", "x.png", "-o", "y.png", "--tile", "512", "--force", "--threads", "2", "--device", "cpu", direction="ba")
    assert (a.direction, a.model, a.tile, a.force, a.threads, a.device) == ("ba", None, 512, True, 2, "cpu")
    e = options(EvalOptions, "eval", "h2z", "--model", "runs/x", "-o", "ev", "--limit", "4", "--split", "val", "--inception-weights", "w.pt")
    assert (e.dataset, e.model, e.out, e.limit, e.split, e.inception_weights, e.threads) == ("h2z", "runs/x", "ev", 4, "val", "w.pt", 0)
    assert options(DemoOptions, "demo").out == "out/translate"  # beside compress demo's out/compress
    with pytest.raises(SystemExit):  # a2b has no shipped weights: --model is required
        build_parser().parse_args(["a2b", "x.png", "-o", "y.png"])


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_apply_sets_the_threads_asked_for_or_one_for_small_work(tmp_path, capsys, monkeypatch, restore_threads):
    model = tiny_cyclegan().eval()
    export_weights(model, tmp_path / "model", parts=model.export_parts())
    write_images(tmp_path / "photos", 1)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # what large work would get
    for threads, expected in (("2", 2), ("0", 1)):  # 0: a tiny generator is small work, so one thread
        torch.set_num_threads(3)
        code, err = translate_here(capsys, "a2b", str(tmp_path / "photos"), "-o", str(tmp_path / f"out{threads}"),
                                   "--model", str(tmp_path / "model"), "--threads", threads, "--device", "cpu")
        assert code == 0, err
        assert torch.get_num_threads() == expected


@pytest.mark.parametrize("args,message", [
    (["--tile", "8"], "tile must be 64 px or more"),
    (["--threads", "-1"], "threads must be 0"),
    (["--device", "gpu0"], "device must be"),
])
def test_bad_options_are_one_line_and_nothing_written(tmp_path, capsys, args, message):
    write_images(tmp_path / "photos", 1)
    code, err = translate_here(capsys, "horse2zebra", str(tmp_path / "photos"), "-o", str(tmp_path / "never"), *args)
    assert code == 2 and message in err and err.count("\n") == 1 and not (tmp_path / "never").exists()


def test_train_refuses_a_shallow_unet_in_one_line_before_writing(tmp_path, capsys):
    write_images(tmp_path / "data" / "trainA", 2)
    write_images(tmp_path / "data" / "trainB", 2)
    code, err = translate_here(capsys, "train", "x", "--data", str(tmp_path / "data"), "--run", str(tmp_path / "run"), "--size", "32",
                               "--val", "0", "--generator", "unet", "--num-downs", "4", "--ngf", "4", "--ndf", "4")
    assert code == 2 and "num_downs 5 or more" in err and err.count("\n") == 1 and not (tmp_path / "run").exists()
