"""``compress import-compressai``: checkpoints written here by CompressAI's own classes (random
initialisation, small widths, the real state-dict layout) become ensō codecs whose decode matches
CompressAI's own ``compress``/``decompress``; the integer path holds on these foreign weights."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from compressai.models import FactorizedPrior, JointAutoregressiveHierarchicalPriors, MeanScaleHyperprior, ScaleHyperprior

from compress.cli import main
from compress.codec import Codec
from compress.container import parse
from shared.data.images import load_image, save_image
from shared.errors import run_cli

CLASSES = {"bmshj2018-factorized": FactorizedPrior, "bmshj2018-hyperprior": ScaleHyperprior, "mbt2018-mean": MeanScaleHyperprior}
N, M = 16, 24


def compressai_net(arch: str, seed: int = 0):
    """CompressAI's own model of ``arch``, randomly initialised, then spread so that the test can
    fail: at initialisation y is below ±0.25 (everything rounds to 0 and any decoder "matches") and
    h_s predicts scales of 1e-3 (every symbol escape-coded). So g_a's last layer is scaled up (y
    spans ±4), g_s's output centred in [0, 1], h_a's output scaled up and h_s's scales raised
    towards y's spread."""
    torch.manual_seed(seed)
    net = CLASSES[arch](N, M).eval()
    with torch.no_grad():
        net.g_a[-1].weight.mul_(20)
        net.g_a[-1].bias.mul_(20)
        net.g_s[0].weight.div_(10)
        net.g_s[-1].weight.mul_(3)
        net.g_s[-1].bias.add_(0.5)
        if hasattr(net, "h_s"):
            net.h_a[-1].weight.mul_(5)
            net.h_a[-1].bias.mul_(5)
            last = [layer for layer in net.h_s if isinstance(layer, torch.nn.Conv2d)][-1]
            last.weight.mul_(0.5)
            last.bias[:M].add_(1.5)  # the scales (the means, in mbt2018-mean, are the rest)
    return net


def photo(h: int = 128, w: int = 192, seed: int = 0) -> torch.Tensor:
    """A smooth random RGB image (3, h, w) in [0, 1], sides divisible by 64 as CompressAI needs."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, h // 16, w // 16, generator=g)
    return torch.nn.functional.interpolate(base, size=(h, w), mode="bicubic", align_corners=False)[0].clamp(0, 1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1 / max(float((a - b).pow(2).mean()), 1e-12))


def cli(*argv) -> int:
    return run_cli(main, [str(a) for a in argv])


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """{(arch, updated): (codec folder, CompressAI net)}: each architecture's checkpoint saved
    before and after CompressAI's ``update()``, imported through the command."""
    root = tmp_path_factory.mktemp("compressai")
    out = {}
    for arch in CLASSES:
        net = compressai_net(arch)
        torch.save(net.state_dict(), root / f"{arch}-fresh.pth")
        net.update(force=True)
        torch.save(net.state_dict(), root / f"{arch}-updated.pth")
        for updated in (False, True):
            folder = root / f"{arch}-{'updated' if updated else 'fresh'}"
            assert cli("import-compressai", root / f"{folder.name}.pth", "--arch", arch, "-o", folder) == 0
            out[arch, updated] = folder, net
    return out


@pytest.mark.parametrize("updated", [False, True], ids=["fresh", "updated"])
@pytest.mark.parametrize("arch", list(CLASSES))
def test_decode_matches_compressai_own_decode(imported, arch, updated):
    folder, net = imported[arch, updated]
    x = photo()
    with torch.no_grad():
        coded = net.compress(x[None])
        theirs = net.decompress(coded["strings"], coded["shape"])["x_hat"][0]
    assert psnr(theirs, theirs.mean((1, 2), keepdim=True)) < 30  # their image is no flat colour
    codec = Codec.load(folder)
    ours = codec.decode(codec.encode(x, 0.5))
    assert psnr(ours, theirs) >= 40
    other = Codec.load(imported[arch, not updated][0])  # the tables, recomputed, are the same either way
    assert other.hash == codec.hash
    meta = json.loads((folder / "model.json").read_text())
    assert (meta["config"]["N"], meta["config"]["M"]) == (N, M) and meta["imported_from"]["arch"] == arch


@pytest.mark.parametrize("arch", list(CLASSES))
def test_file_size_follows_the_model_estimate(imported, arch):
    """The file against −Σ log2 likelihoods of the coded values (eval-mode forward) plus the
    header: within 2 % (the rANS coder's flush costs a few bytes per section)."""
    codec = Codec.load(imported[arch, True][0])
    x = photo(seed=1)
    data = codec.encode(x, 0.5)
    header = len(data) - sum(len(s) for s in parse(data)[1])
    with torch.no_grad():
        out = codec.model(x[None], torch.tensor([0.5]))
    bits = sum(float(-torch.log2(lik).sum()) for lik in out["likelihoods"].values())
    assert abs(len(data) / (bits / 8 + header) - 1) < 0.02, (len(data), bits / 8 + header)


@pytest.mark.parametrize("arch", ["bmshj2018-hyperprior", "mbt2018-mean"])
def test_coding_is_identical_across_thread_counts(imported, arch):
    """The integer hyper-synthesis on foreign weights: the same bytes encoded on 1 and 2 threads,
    the same pixels decoded on 1 and 2 threads."""
    codec = Codec.load(imported[arch, False][0])
    x = photo(80, 144, seed=2)  # padded to 128×192: the padding's latents are coded too
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2):
            torch.set_num_threads(n)
            data = codec.encode(x, 0.5)
            results.append((data, codec.decode(data), codec.decode(results[0][0]) if results else None))
    finally:
        torch.set_num_threads(threads)
    (data, pixels, _), (data2, pixels2, again) = results
    assert data == data2 and torch.equal(pixels, pixels2) and torch.equal(pixels, again)


DECODE = """
import sys, torch
torch.set_num_threads(2)
from compress.codec import Codec
for folder, enso, dst in zip(*[iter(sys.argv[1:])] * 3):
    torch.save(Codec.load(folder).decode(open(enso, "rb").read()), dst)
"""


def test_decode_is_identical_in_a_new_process(imported, tmp_path):
    """Files of both hyperpriors, encoded here on 1 thread, decode to the same pixels in a new
    process on 2 threads (one process for both: importing CompressAI dominates its time)."""
    args, expected = [], []
    for arch in ("bmshj2018-hyperprior", "mbt2018-mean"):
        folder = imported[arch, True][0]
        codec = Codec.load(folder)
        data = codec.encode(photo(80, 144, seed=3), 0.5)
        (tmp_path / f"{arch}.enso").write_bytes(data)
        args += [str(folder), str(tmp_path / f"{arch}.enso"), str(tmp_path / f"{arch}.pt")]
        expected.append(codec.decode(data))
    subprocess.run([sys.executable, "-c", DECODE, *args], check=True, cwd=str(Path(__file__).resolve().parents[1]))
    for arch, pixels in zip(("bmshj2018-hyperprior", "mbt2018-mean"), expected):
        assert torch.equal(torch.load(tmp_path / f"{arch}.pt", weights_only=True), pixels), arch


def test_encode_decode_eval_use_the_folder(imported, tmp_path):
    folder, net = imported["mbt2018-mean", True]
    src = tmp_path / "photo.png"
    save_image(photo(), src)
    assert cli("encode", src, "-o", tmp_path / "photo.enso", "--model", folder) == 0
    assert cli("decode", tmp_path / "photo.enso", "-o", tmp_path / "back.png", "--model", folder) == 0
    x = load_image(src)
    with torch.no_grad():
        coded = net.compress(x[None])
        theirs = net.decompress(coded["strings"], coded["shape"])["x_hat"][0]
    assert psnr(load_image(tmp_path / "back.png"), theirs) >= 40
    from compress.evaluate import resolve_codecs

    (ours,), skipped = resolve_codecs(["ours"], model=str(folder))
    assert not skipped and psnr(ours.decode(ours.encode(x, 0.5)), theirs) >= 40


def bad_inputs(root: Path) -> dict[str, tuple[Path, str, str]]:
    """name → (checkpoint, --arch, what the error line must say)."""
    torch.save(compressai_net("bmshj2018-factorized").state_dict(), root / "factorized.pth")
    torch.manual_seed(0)
    torch.save(JointAutoregressiveHierarchicalPriors(8, 12).state_dict(), root / "mbt2018.pth")
    (root / "notes.txt").write_text("not a checkpoint\n")
    torch.save([torch.zeros(2)], root / "list.pth")
    cut = root / "cut.pth"
    cut.write_bytes((root / "factorized.pth").read_bytes()[:200])
    state = compressai_net("mbt2018-mean").state_dict()
    state["g_s.2.weight"] = state["g_s.2.weight"][:, :8]
    torch.save(state, root / "misfit.pth")
    return {
        "other arch": (root / "factorized.pth", "mbt2018-mean", "holds bmshj2018-factorized weights, not mbt2018-mean; pass --arch bmshj2018-factorized"),
        "context model": (root / "mbt2018.pth", "mbt2018-mean", "other CompressAI models cannot be imported"),
        "missing": (root / "absent.pth", "bmshj2018-factorized", "does not exist"),
        "text file": (root / "notes.txt", "bmshj2018-factorized", "cannot be read as a PyTorch checkpoint"),
        "truncated": (cut, "bmshj2018-factorized", "cannot be read as a PyTorch checkpoint"),
        "no state dict": (root / "list.pth", "bmshj2018-factorized", "holds no state dict"),
        "misfit": (root / "misfit.pth", "mbt2018-mean", "'g_s.2.weight' is (16, 8, 5, 5), not (16, 16, 5, 5)"),
    }


def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys):
    for name, (ckpt, arch, says) in bad_inputs(tmp_path).items():
        out = tmp_path / f"out-{name.replace(' ', '-')}"
        capsys.readouterr()
        assert cli("import-compressai", ckpt, "--arch", arch, "-o", out) == 2, name
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and says in err, (name, err)
        assert not out.exists(), name


def test_existing_weights_need_force(imported, tmp_path, capsys):
    ckpt = tmp_path / "f.pth"
    torch.save(compressai_net("bmshj2018-factorized", seed=1).state_dict(), ckpt)
    folder = tmp_path / "codec"
    assert cli("import-compressai", ckpt, "--arch", "bmshj2018-factorized", "-o", folder) == 0
    before = (folder / "model.safetensors").read_bytes()
    torch.save(compressai_net("bmshj2018-factorized", seed=2).state_dict(), ckpt)
    assert cli("import-compressai", ckpt, "--arch", "bmshj2018-factorized", "-o", folder) == 2
    assert "--force" in capsys.readouterr().err and (folder / "model.safetensors").read_bytes() == before
    assert cli("import-compressai", ckpt, "--arch", "bmshj2018-factorized", "-o", folder, "--force") == 0
    assert (folder / "model.safetensors").read_bytes() != before


def test_zoo_and_training_script_layouts_load(tmp_path):
    """The zoo's files name the bottleneck's tensors ``_biases.0``/``_matrices.0``/``_factors.0`` and
    DataParallel adds ``module.``; CompressAI's examples/train.py saves ``{"state_dict": ...}``."""
    from compress.import_compressai import convert, read_state_dict

    net = compressai_net("bmshj2018-hyperprior")
    net.update(force=True)
    renames = {"biases.": "_biases.", "matrices.": "_matrices.", "factors.": "_factors."}
    old = {}
    for k, v in net.state_dict().items():
        for new, zoo in renames.items():
            k = k.replace(f"entropy_bottleneck.{new}", f"entropy_bottleneck.{zoo}")
        old["module." + k] = v
    torch.save({"epoch": 3, "state_dict": old, "loss": torch.tensor(1.0)}, tmp_path / "checkpoint.pth.tar")
    model = convert(read_state_dict(tmp_path / "checkpoint.pth.tar"), "bmshj2018-hyperprior")
    theirs = net.state_dict()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in theirs.items() if not k.startswith("gaussian_conditional._"))
