"""CUT and FastCUT: PatchNCE, the models through the trainer (exact resume, moving averages),
export and loading, the held-out split, and the ``translate train --model`` errors."""
from __future__ import annotations

import json

import pytest
import torch

from shared import registry
from shared.checkpoint import load_exported, model_from_checkpoint
from shared.data import TensorItems
from shared.ema import ema_copy, update_ema
from shared.errors import run_cli
from shared.trainer import TrainConfig, Trainer, seed_everything
from translate.cli import main
from translate.data import UnpairedImages, held_out
from translate.evaluate import split_files
from translate.models.cut import EncoderTap, nce_layers, patch_nce
from translate.models.generators import build_generator
from translate.shipping import export_translator

TINY = {"generator": "mobile", "ngf": 4, "ndf": 4, "n_blocks": 2, "num_patches": 16, "nce_dim": 8}
CFG = TrainConfig(steps=6, batch_size=2, lr=2e-4, precision="fp32", progress=False, log_every=3, ckpt_every=3)


def tiny(name: str = "cut", seed: int = 0, **overrides):
    seed_everything(seed)
    return registry.build(name, {**TINY, **overrides})


def pairs(n: int = 8, size: int = 32) -> TensorItems:
    g = torch.Generator().manual_seed(1)
    return TensorItems(torch.rand(n, 3, size, size, generator=g), torch.rand(n, 3, size, size, generator=g))


def test_patch_nce_prefers_matching_patches():
    torch.manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(2, 32, 8), dim=-1)
    aligned = patch_nce(q, q.clone(), 0.07)
    shuffled = patch_nce(q, q[:, torch.randperm(32)], 0.07)
    assert aligned < 0.1 < torch.log(torch.tensor(32.0)) < shuffled


@pytest.mark.parametrize("kind,extra", [("resnet", {"n_blocks": 9}), ("mobile", {"n_blocks": 6}), ("unet", {"num_downs": 5})])
def test_encoder_tap_reads_the_nce_layers_and_stops_early(kind, extra):
    torch.manual_seed(0)
    net = build_generator(kind, ngf=4, **extra)
    tap = EncoderTap(net)
    x = torch.rand(1, 3, 64, 64)
    out, feats = tap(x)
    assert out.shape == x.shape and feats[0] is x and len(feats) == 1 + len(nce_layers(net))
    _, early = tap(x, full=False)
    assert len(early) == len(feats) and all(torch.equal(a, b) for a, b in zip(feats, early))
    assert torch.equal(net(x), out)  # the hooks are silent outside a tap
    if kind == "resnet":  # the anchor's nce_layers 0,4,8,12,16: downsamplings and blocks 2 and 6
        assert [f.shape[1] for f in feats] == [3, 8, 16, 16, 16]


def test_fastcut_has_no_identity_term_and_cut_has():
    a, b = (torch.rand(1, 3, 32, 32) for _ in range(2))
    cut, fast = tiny("cut"), tiny("fastcut")
    assert cut.config.nce_idt and not fast.config.nce_idt
    out = fast.training_step((a, b), "generator")
    assert {"loss_G_GAN", "loss_NCE", "loss_G_GAN_BA", "loss_NCE_BA"} <= set(out)
    one_sided = tiny("cut", bidirectional=False)
    out = one_sided.training_step((a, b), "generator")
    assert one_sided.directions == ("ab",) and not any(k.endswith("_BA") for k in out)
    with pytest.raises(ValueError, match="A → B only"):
        one_sided.generator("ba")


def test_generator_step_leaves_discriminators_without_gradients():
    model = tiny("cut")
    model.optimizers(1e-3)
    out = model.training_step((torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)), "generator")
    out["loss"].backward()
    assert all(p.grad is None for n in model.nets.values() for p in n.d.parameters())
    assert all(p.grad is not None for n in model.nets.values() for p in n.f.parameters())


def test_moving_average_starts_at_the_weights_and_follows_them():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    avg = ema_copy(net)
    assert not any(p.requires_grad for p in avg.parameters())
    with torch.no_grad():
        net.weight.add_(1.0)
    update_ema(avg, net, 0.9)  # no step: the plain decay
    assert torch.allclose(avg.weight, net.weight - 0.9)
    before = avg.weight.clone()
    update_ema(avg, net, 0.999, step=0)  # warm-up caps the decay at 1/10
    assert torch.allclose(avg.weight, before + 0.9 * (net.weight - before))


@pytest.mark.parametrize("name", ["cut", "fastcut"])
def test_trainer_resume_is_exact_and_inference_uses_the_average(tmp_path, name):
    whole = tiny(name)
    Trainer(whole, pairs(), CFG, tmp_path / "whole").fit()
    half = tiny(name)
    Trainer(half, pairs(), CFG, tmp_path / "half").fit(3)
    resumed = tiny(name, seed=5)  # another init: everything must come from the checkpoint
    Trainer(resumed, pairs(), CFG, tmp_path / "half", resume=True).fit()
    a, b = whole.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert whole.generator("ab") is whole.ema["ab"]
    assert not torch.equal(whole.ema["ab"].decoder[-2].weight, whole.nets["ab"].g.decoder[-2].weight)


def test_export_ships_the_averaged_generators_only(tmp_path):
    model = tiny("cut")
    Trainer(model, pairs(), CFG, tmp_path / "run").fit()
    model_from_checkpoint(tmp_path / "run" / "checkpoint.pt")
    export_translator(tmp_path / "run", tmp_path / "ship")
    meta = json.loads((tmp_path / "ship" / "model.json").read_text())
    assert meta["parts"] == ["ema"] and meta["name"] == "cut"
    shipped = load_exported(tmp_path / "ship")
    x = torch.rand(1, 3, 32, 32)
    assert torch.allclose(shipped.translate_ab(x), model.eval().translate_ab(x), atol=1e-3)  # fp16 weights


def write_images(folder, n: int, size=(36, 40)) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(n)
    for i in range(n):
        arr = (torch.rand(*size, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(arr).save(folder / f"{i:03d}.png")


def test_held_out_split_is_fixed_and_kept_out_of_training(tmp_path, capsys):
    for side in ("trainA", "trainB"):
        write_images(tmp_path / side, 10)
    files = sorted((tmp_path / "trainA").iterdir())
    val = held_out(files, 3)
    assert val == held_out(list(reversed(files)), 3) and len(set(val)) == 3 and held_out(files, 0) == []
    with pytest.raises(ValueError, match="cannot hold out 10 of 10 images; hold out fewer"):
        held_out(files, 10)
    data = UnpairedImages(tmp_path / "trainA", tmp_path / "trainB", load_size=36, crop=32, exclude=(val, []))
    assert len(data.a.files) == 7 and not set(val) & set(data.a.files)
    with pytest.raises(ValueError, match="cannot hold out 100"):  # no run config: the default draw of 100 is too many here
        split_files(None, "x", tmp_path, "val")
    code, err = translate_here(capsys, "train", "x", "--data", str(tmp_path), "--size", "32", "--val", "10", "--run", str(tmp_path / "run"))
    assert code == 2 and "cannot hold out 10 of 10" in err and err.count("\n") == 1 and not (tmp_path / "run").exists()


def translate_here(capsys, *args: str) -> tuple[int, str]:
    code = run_cli(main, list(args))
    return code, capsys.readouterr().err


def test_cli_trains_cut_with_a_held_out_split_and_refuses_mixed_flags(tmp_path, capsys):
    for side in ("trainA", "trainB"):
        write_images(tmp_path / "data" / side, 6)
    run = tmp_path / "run"
    shared_flags = ["train", "tiny", "--data", str(tmp_path / "data"), "--size", "32", "--load-size", "36", "--val", "2",
                    "--generator", "mobile", "--ngf", "4", "--ndf", "4", "--n-blocks", "1",
                    "--steps", "2", "--batch-size", "1", "--precision", "fp32", "--no-progress", "--log-every", "1"]
    common = shared_flags + ["--num-patches", "8", "--nce-dim", "8"]
    code, err = translate_here(capsys, *common, "--model", "cut", "--run", str(run))
    assert code == 0, err
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["name"] == "cut" and len(config["val"]["A"]) == 2 and len(config["val"]["B"]) == 2
    val = split_files(run, "tiny", tmp_path / "data", "val")
    assert [f.name for f in val["A"]] == config["val"]["A"]
    code, err = translate_here(capsys, *shared_flags, "--model", "cyclegan", "--run", str(run), "--resume")
    assert code == 2 and "'cut'" in err and err.count("\n") == 1
    code, err = translate_here(capsys, *common, "--model", "cut", "--pool-size", "3", "--run", str(tmp_path / "other"))
    assert code == 2 and "--pool-size is not an option of --model cut" in err and not (tmp_path / "other").exists()
    code, err = translate_here(capsys, *common, "--model", "fastcut", "--ema", "1.5", "--run", str(tmp_path / "other"))
    assert code == 2 and "ema" in err and not (tmp_path / "other").exists()


def test_warm_start_copies_a_cyclegan_pair_into_cut_and_refuses_another_architecture(tmp_path, capsys):
    seed_everything(3)
    cyclegan = registry.build("cyclegan", {k: TINY[k] for k in ("generator", "ngf", "ndf", "n_blocks")})
    cut = tiny("cut", seed=4)
    assert cut.warm_start(cyclegan) == ("ab", "ba")
    x = torch.rand(1, 3, 32, 32)
    for d in ("ab", "ba"):  # the trained generator and its average both start at the CycleGAN's weights
        expected = cyclegan.generator(d)(x)
        assert torch.equal(cut.trained_generator(d)(x), expected) and torch.equal(cut.generator(d)(x), expected)
    with pytest.raises(ValueError, match="another architecture"):
        tiny("fastcut", n_blocks=3).warm_start(cyclegan)
    one_way = tiny("fastcut", bidirectional=False)
    assert one_way.warm_start(cut) == ("ab",)

    for side in ("trainA", "trainB"):
        write_images(tmp_path / "data" / side, 6)
    exported = tmp_path / "h2z"
    run = tmp_path / "run"
    flags = ["train", "tiny", "--data", str(tmp_path / "data"), "--size", "32", "--load-size", "36", "--val", "2",
             "--generator", "mobile", "--ngf", "4", "--ndf", "4", "--n-blocks", "1",
             "--steps", "1", "--batch-size", "1", "--precision", "fp32", "--no-progress", "--log-every", "1"]
    assert translate_here(capsys, *flags, "--model", "cyclegan", "--run", str(run))[0] == 0
    export_translator(run, exported)
    code, err = translate_here(capsys, *flags, "--model", "fastcut", "--num-patches", "8", "--nce-dim", "8", "--init", str(exported),
                               "--lr", "0", "--ema", "0", "--run", str(tmp_path / "warm"))
    assert code == 0, err
    warm, source = model_from_checkpoint(tmp_path / "warm" / "checkpoint.pt"), load_exported(exported)
    assert torch.allclose(warm.generator("ab")(x), source.generator("ab")(x), atol=1e-2)  # lr 0: still the fp16 export
    code, err = translate_here(capsys, *flags, "--model", "cut", "--n-blocks", "2", "--init", str(exported), "--run", str(tmp_path / "bad"))
    assert code == 2 and err.startswith("error: --init") and "another architecture" in err and err.count("\n") == 1
    assert not (tmp_path / "bad").exists()
