"""``translate import-cyclegan``: generators saved here with the anchor's module structure and key
names (tests/anchor_cyclegan.py, random weights, the stale InstanceNorm statistics of its issue
#262 included) become an ensō translator whose generators give the anchor's outputs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from shared.data.images import load_image, save_image
from shared.errors import run_cli
from translate.apply import apply_generator, load_translator
from translate.cli import main
from translate.models.translator import to_signed, to_unit

from .anchor_cyclegan import AnchorResnetGenerator, with_stale_stats

NGF = 8


def cli(*argv) -> int:
    return run_cli(main, [str(a) for a in argv])


def anchor_pair(root: Path, n_blocks: int, use_dropout: bool = False, ngf: int = NGF) -> tuple[Path, Path, list]:
    """The anchor's G_A and G_B (seeds 0 and 1, eval mode), saved as latest_net_G_A/G_B.pth with stale statistics."""
    nets, paths = [], []
    for seed, name in ((0, "G_A"), (1, "G_B")):
        torch.manual_seed(seed)
        net = AnchorResnetGenerator(ngf, n_blocks, use_dropout).eval()
        paths.append(root / f"latest_net_{name}.pth")
        torch.save(with_stale_stats(net), paths[-1])
        nets.append(net)
    return paths[0], paths[1], nets


@pytest.mark.parametrize("n_blocks,use_dropout", [(9, False), (6, False), (6, True)], ids=["resnet9", "resnet6", "resnet6-dropout"])
def test_imported_generators_give_the_anchor_outputs(tmp_path, n_blocks, use_dropout):
    g_a, g_b, (net_a, net_b) = anchor_pair(tmp_path, n_blocks, use_dropout)
    assert any(k.endswith("running_mean") for k in torch.load(g_a, weights_only=True))
    out = tmp_path / "h2z"
    assert cli("import-cyclegan", g_a, g_b, "-o", out) == 0
    model = load_translator(out)
    meta = json.loads((out / "model.json").read_text())
    assert meta["config"]["n_blocks"] == n_blocks and meta["config"]["ngf"] == NGF and meta["parts"] == ["g_ab", "g_ba"]
    x = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        for direction, anchor in (("ab", net_a), ("ba", net_b)):
            theirs = anchor(x)
            assert theirs.std() > 0.05 and (theirs.abs() < 0.9).float().mean() > 0.5  # no saturated tanh
            assert (model.generator(direction)(x) - theirs).abs().max() < 1e-5
        assert (model.generator("ab")(x) - net_b(x)).abs().max() > 0.01  # the directions are not swapped


def test_translate_command_and_any_size(tmp_path):
    """``translate horse2zebra --model DIR`` on an odd-sized photo: the anchor's output on the
    reflect-padded image, cropped, to within the PNG's 8-bit rounding."""
    g_a, g_b, (net_a, _) = anchor_pair(tmp_path, 9)
    out = tmp_path / "h2z"
    assert cli("import-cyclegan", g_a, g_b, "-o", out) == 0
    img = torch.nn.functional.interpolate(torch.rand(1, 3, 6, 8, generator=torch.Generator().manual_seed(1)), size=(70, 90), mode="bicubic")[0].clamp(0, 1)
    save_image(img, tmp_path / "horse.png")
    assert cli("horse2zebra", tmp_path / "horse.png", "-o", tmp_path / "zebra.png", "--model", out) == 0
    x = load_image(tmp_path / "horse.png")
    with torch.no_grad():
        padded = torch.nn.functional.pad(to_signed(x)[None], (0, 2, 0, 2), mode="reflect")  # to 72×92, as apply pads
        theirs = to_unit(net_a(padded)[0, :, :70, :90])
    assert (apply_generator(load_translator(out).generator("ab"), x) - theirs).abs().max() < 1e-5
    assert (load_image(tmp_path / "zebra.png") - theirs).abs().max() <= 0.5 / 255 + 1e-5


def test_eval_translates_and_reconstructs_as_the_anchor(tmp_path):
    """``translate eval --model DIR``'s per-image work (:func:`translate.evaluate.translate_split`,
    after :func:`load_translator`): fakes and cycle PSNRs equal the anchor's (FID itself is left to
    tests/test_translate_eval.py: its 2048² square roots take minutes on a shared CPU)."""
    from translate.evaluate import _to_net, quantize, translate_split

    g_a, g_b, (net_a, net_b) = anchor_pair(tmp_path, 6)
    out = tmp_path / "h2z"
    assert cli("import-cyclegan", g_a, g_b, "-o", out) == 0
    g = torch.Generator().manual_seed(2)
    files = []
    for i in range(2):
        files.append(tmp_path / "testA" / f"{i}.png")
        save_image(torch.rand(3, 64, 64, generator=g), files[-1])
    fakes, psnrs, _ = translate_split(load_translator(out), files, "ab", tmp_path / "eval", 64, 0, progress=False)
    for f, fake, p in zip(files, fakes, psnrs):
        x = quantize(load_image(f, "RGB"))
        theirs = _to_net(net_a, x)
        rec = _to_net(net_b, theirs)
        assert torch.equal(fake, theirs)
        assert p == pytest.approx(10 * torch.log10(1 / (rec - x).pow(2).mean()).item(), abs=1e-4)


def bad_inputs(root: Path) -> dict[str, tuple[Path, Path, str]]:
    """name → (G_A, G_B, what the error line must say)."""
    g_a, g_b, _ = anchor_pair(root, 9)
    torch.manual_seed(0)
    torch.save(with_stale_stats(AnchorResnetGenerator(NGF, 6)), root / "six.pth")
    torch.save(with_stale_stats(AnchorResnetGenerator(NGF * 2, 9)), root / "wide.pth")
    batch = AnchorResnetGenerator(NGF, 9).state_dict()
    batch["model.2.weight"], batch["model.2.bias"] = torch.ones(NGF), torch.zeros(NGF)  # a norm layer with parameters
    torch.save(batch, root / "batchnorm.pth")
    torch.save({"model.model.0.weight": torch.zeros(8, 3, 4, 4)}, root / "unet.pth")
    torch.save(with_stale_stats(AnchorResnetGenerator(NGF, 9, input_nc=1)), root / "grey.pth")
    (root / "notes.txt").write_text("not a checkpoint\n")
    torch.save({"G": [torch.zeros(1)]}, root / "nested.pth")
    return {
        "missing": (root / "absent.pth", g_b, "does not exist"),
        "text file": (g_a, root / "notes.txt", "cannot be read as a PyTorch checkpoint"),
        "no state dict": (root / "nested.pth", g_b, "holds no state dict"),
        "other blocks": (g_a, root / "six.pth", "are not one CycleGAN's pair"),
        "other width": (root / "wide.pth", g_b, "are not one CycleGAN's pair"),
        "batch norm": (root / "batchnorm.pth", g_b, "unexpected 'model.2."),
        "unet": (root / "unet.pth", g_b, "only --netG resnet_9blocks / resnet_6blocks import"),
        "grey": (root / "grey.pth", g_b, "takes 1-channel images"),
    }


def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys):
    for name, (g_a, g_b, says) in bad_inputs(tmp_path).items():
        out = tmp_path / f"out-{name.replace(' ', '-')}"
        capsys.readouterr()
        assert cli("import-cyclegan", g_a, g_b, "-o", out) == 2, name
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and says in err, (name, err)
        assert not out.exists(), name


def test_existing_translator_needs_force(tmp_path, capsys):
    g_a, g_b, _ = anchor_pair(tmp_path, 6)
    out = tmp_path / "h2z"
    assert cli("import-cyclegan", g_a, g_b, "-o", out, "--threads", "1") == 0
    before = (out / "model.safetensors").read_bytes()
    assert cli("import-cyclegan", g_b, g_a, "-o", out) == 2 and "--force" in capsys.readouterr().err
    assert (out / "model.safetensors").read_bytes() == before
    assert cli("import-cyclegan", g_b, g_a, "-o", out, "--force") == 0 and (out / "model.safetensors").read_bytes() != before
